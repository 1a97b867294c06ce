"""Dataset statistics of SPEC §2, computed from (user, item, intent) rows.

The result is a plain JSON-ready dict so that the run store and the workbench can keep
and show it without knowing pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

UNKNOWN_INTENT = "<unknown>"


def compute_stats(frame: pd.DataFrame) -> dict:
    """Counts, density, sequence lengths, long-tail shares, frequency histogram,
    intents."""
    num_rows = len(frame)
    user_len = frame["user"].value_counts().to_numpy()
    item_freq = frame["item"].value_counts().to_numpy()
    users, items = len(user_len), len(item_freq)
    intents = frame.groupby("intent", sort=False).agg(
        items=("item", "nunique"), interactions=("item", "size")
    )
    intents = intents.sort_values("interactions", ascending=False)
    unknown_items = 0
    if UNKNOWN_INTENT in intents.index:
        unknown_items = int(intents.loc[UNKNOWN_INTENT, "items"])
    freq_values, freq_counts = np.unique(item_freq, return_counts=True)
    return {
        "users": users,
        "items": items,
        "intents": len(intents),
        "interactions": num_rows,
        "density": num_rows / (users * items) if users and items else 0.0,
        "avg_seq_len": _mean(user_len),
        "median_seq_len": float(np.median(user_len)) if users else 0.0,
        "min_seq_len": int(user_len.min()) if users else 0,
        "max_seq_len": int(user_len.max()) if users else 0,
        "users_under_3": int((user_len < 3).sum()),
        "interactions_per_item": num_rows / items if items else 0.0,
        "median_interactions_per_item": float(np.median(item_freq)) if items else 0.0,
        "items_seen_once": int((item_freq == 1).sum()),
        "share_items_seen_once": float((item_freq == 1).mean()) if items else 0.0,
        "unknown_intent_items": unknown_items,
        # item-frequency histogram: how many items were seen exactly `freq` times
        "item_freq_hist": {
            "freq": freq_values.astype(int).tolist(),
            "items": freq_counts.astype(int).tolist(),
        },
        "intent_sizes": [
            {"intent": str(label), "items": int(n_items), "interactions": int(n_rows)}
            for label, n_items, n_rows in zip(
                intents.index, intents["items"], intents["interactions"], strict=True
            )
        ],
    }


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0
