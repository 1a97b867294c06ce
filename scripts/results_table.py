"""The engine's results table from the runs a ``compare`` folder holds.

``python main.py compare ... --protocol both --out DIR`` leaves one JSON summary per
finished run in ``DIR/runs/``; this prints, per model, the mean ± sample std over seeds
of validation and test HR@5, NDCG@5 and MRR (sampled protocol), test NDCG@10 under the
full-ranking protocol (same checkpoint, chosen on sampled validation), the epochs
trained, the best epoch and the training seconds per epoch.

With ``--by-frequency`` it prints instead test NDCG@5 (sampled protocol) by how often
the held-out item occurs in training, users of every seed pooled, from the per-user
results beside the summaries: where in the long tail each model gains.

With ``--table2`` it prints the paper's Table 2 (``engine.reporting``, as ``compare``
writes it) from the summaries alone, so runs of several folders or sessions can be
tabulated together; the paired tests use the per-user results where they lie beside
the summaries (a run without them still counts in its column's mean ± std), and
CaFe against each baseline with the seeds each test covers.

    python scripts/results_table.py out/compare-ciao [--models pop,sasrec,cafe]
        [--by-frequency | --table2 [--write]]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import reporting  # noqa: E402
from engine.inspect import FREQUENCY_EDGES, breakdown  # noqa: E402
from engine.models import REGISTRY  # noqa: E402
from engine.reporting import model_order  # noqa: E402

SAMPLED = ("HR@5", "NDCG@5", "MRR")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a compare --out folder")
    parser.add_argument("--models", default=None, help="models, comma-separated")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--by-frequency",
        action="store_true",
        help="test NDCG@5 by the held-out item's training count instead",
    )
    shown.add_argument(
        "--table2",
        action="store_true",
        help="the paper's Table 2 (both protocols) from the summaries instead",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="with --table2: also write table2 and significance .md/.csv/.tex into "
        "the folder, as compare does",
    )
    args = parser.parse_args()
    records = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((args.folder / "runs").glob("*.json"))
    ]
    models = args.models.split(",") if args.models else None
    if args.by_frequency:
        print(render_by_frequency(args.folder / "runs", records, models), end="")
    elif args.table2:
        write = args.folder if args.write else None
        print(render_table2(args.folder / "runs", records, models, write), end="")
    else:
        print(render(records, models), end="")
    return 0


def render_by_frequency(
    folder: Path, records: list[dict], models: list[str] | None = None
) -> str:
    """Rows: buckets of the held-out item's training count; columns: models (default
    configuration runs only, every seed's users pooled)."""
    found = sorted({r["model"] for r in records}, key=model_order)
    models = [m for m in (models or found) if m in found]
    tables = {}
    for model in models:
        default = REGISTRY[model].config_class().to_dict()
        frames = [
            pd.read_parquet(folder / f"{r['key']}.per_user.parquet")
            for r in records
            if r["model"] == model
            and r.get("model_config", default) == default
            and (folder / f"{r['key']}.per_user.parquet").exists()
        ]
        if frames:
            users = pd.concat(frames, ignore_index=True)
            users = users[users["protocol"] == "sampled"]
            tables[model] = breakdown(users, edges=FREQUENCY_EDGES)
    if not tables:
        return "no per-user results found\n"
    first = next(iter(tables.values()))
    lines = ["| held-out item seen in training | users × seeds | "
             + " | ".join(tables) + " |"]  # fmt: skip
    lines.append("| --- | ---: |" + " ---: |" * len(tables))
    for i, bucket in enumerate(first["bucket"]):
        best = max(t["mean"].iloc[i] for t in tables.values())
        cells = [
            f"**{t['mean'].iloc[i]:.4f}**"
            if t["mean"].iloc[i] == best and best > 0
            else f"{t['mean'].iloc[i]:.4f}"
            for t in tables.values()
        ]
        users = int(first["users"].iloc[i])
        lines.append(f"| {bucket} | {users:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def default_runs(records: list[dict], model: str) -> list[dict]:
    """The runs of ``model`` with its default configuration."""
    default = REGISTRY[model].config_class().to_dict()
    return [
        r
        for r in records
        if r["model"] == model and r.get("model_config", default) == default
    ]


def render_table2(
    folder: Path,
    records: list[dict],
    models: list[str] | None = None,
    write: Path | None = None,
) -> str:
    """Table 2 of the default-configuration runs, both protocols where measured
    (and its files in ``write``, when given)."""
    found = sorted({r["model"] for r in records}, key=model_order)
    models = [m for m in (models or found) if m in found]
    rows, users = [], []
    for model in models:
        for r in default_runs(records, model):
            tests = {r["protocol"]: r["test"]}
            tests |= {p: v["test"] for p, v in (r.get("also") or {}).items()}
            for protocol, metrics in tests.items():
                rows.append(
                    {"label": model, "model": model, "protocol": protocol,
                     "seed": seed_of(r)} | metrics
                )  # fmt: skip
            per_user = folder / f"{r['key']}.per_user.parquet"
            if per_user.exists():
                frame = pd.read_parquet(per_user)
                users.append(frame.assign(label=model, seed=seed_of(r)))
    if not rows:
        return "no runs found\n"
    runs = pd.DataFrame.from_records(rows)
    users = pd.concat(users, ignore_index=True) if users else None
    seeds = ", ".join(map(str, sorted(runs["seed"].unique())))
    name = records[0]["dataset"]
    grid = reporting.comparison_table(
        runs, users, title=f"{name}: test metrics over seeds {seeds}"
    )
    if runs["protocol"].nunique() > 1:
        grid.notes.append(reporting.CHOSEN_ON_SAMPLED)
    text = reporting.to_markdown(grid)
    if write is not None:
        reporting.write_grid(grid, write, "table2")
    if users is not None and "cafe" in set(users["label"]):
        table = reporting.significance_table(users)
        title = f"{name}: cafe against each baseline, per-user NDCG@5"
        text += "\n" + reporting.frame_to_markdown(table, title)
        if write is not None:
            reporting.write_frame(table, write, "significance", title)
    return text


def cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def render(records: list[dict], models: list[str] | None = None) -> str:
    """One row per model (and seeds it has), in the paper's column order."""
    found = sorted({r["model"] for r in records}, key=model_order)
    models = [m for m in (models or found) if m in found]
    head = [f"valid {m}" for m in SAMPLED] + [f"test {m}" for m in SAMPLED]
    head += ["test NDCG@10 (full)", "epochs", "best epoch", "s/epoch (with validation)"]
    lines = ["| model (seeds) | " + " | ".join(head) + " |"]
    lines.append("|---" + "|---:" * len(head) + "|")
    for model in models:
        runs = sorted((r for r in records if r["model"] == model), key=seed_of)
        row = [cell([r[split][m] for r in runs]) for split in ("valid", "test")
               for m in SAMPLED]  # fmt: skip
        row.append(cell([r["also"]["full"]["test"]["NDCG@10"] for r in runs
                         if "full" in (r.get("also") or {})]))  # fmt: skip
        row.append(", ".join(str(r["epochs_trained"]) for r in runs))
        row.append(", ".join(str(r["best_epoch"]) for r in runs))
        per_epoch = [r["seconds"] / r["epochs_trained"] for r in runs
                     if r["epochs_trained"]]  # fmt: skip
        row.append(f"{np.mean(per_epoch):.1f}" if per_epoch else "–")
        seeds = ",".join(str(seed_of(r)) for r in runs)
        lines.append(f"| {model} ({seeds}) | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def seed_of(record: dict) -> int:
    return int(record["seed"])


if __name__ == "__main__":
    sys.exit(main())
