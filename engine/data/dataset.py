"""Column mapping, filters and the prepared dataset (SPEC §2).

``prepare`` turns raw tables into a :class:`Dataset`: users and items re-indexed (item 0
and intent 0 are padding), each user's items in time order, one intent per item (an
explicit ``<unknown>`` intent where none is given), statistics before and after
filtering, and a content hash that names this version of the data.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from engine.data.io import RawData
from engine.data.stats import UNKNOWN_INTENT, compute_stats
from engine.errors import DataError

log = logging.getLogger(__name__)

PAD = "<pad>"

_USER_NAMES = (
    "user_id",
    "userid",
    "user",
    "uid",
    "customer_id",
    "reviewer_id",
    "reviewerid",
)
_ITEM_NAMES = (
    "item_id",
    "itemid",
    "item",
    "iid",
    "product_id",
    "movie_id",
    "asin",
    "sku",
)
_TIME_NAMES = (
    "timestamp",
    "time",
    "ts",
    "datetime",
    "date",
    "unixreviewtime",
    "event_time",
)
_INTENT_NAMES = (
    "category",
    "intent",
    "genre",
    "seller",
    "brand",
    "class",
    "categories",
)
_NAME_NAMES = ("title", "name", "item_name", "movie_title", "product_name")


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns hold user, item, time and intent; time and intent are optional."""

    user: str
    item: str
    time: str | None = None
    intent: str | None = None
    # Other item attributes kept as possible intents, so the same data can be trained
    # again with, say, seller instead of category.
    intent_candidates: tuple[str, ...] = ()
    # A column with readable item names (titles), shown by the workbench.
    name: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ColumnMapping:
        data = dict(data)
        data["intent_candidates"] = tuple(data.get("intent_candidates", ()))
        return cls(**data)


@dataclass(frozen=True)
class Filters:
    """Row filters applied before splitting, each once, in the order listed."""

    # "keep" every repeated (user, item) row, or keep only the "first" or "last" of
    # them.
    duplicates: Literal["keep", "first", "last"] = "keep"
    # The paper's k (Figure 4): drop items with fewer interactions than this.
    min_item_freq: int = 1
    # Drop users with fewer interactions than this (after the item filter).
    min_user_len: int = 1
    # Rows of one user with the same time keep file order, or are shuffled with a seed.
    tie_break: Literal["file", "random"] = "file"
    tie_seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Filters:
        return cls(**data)


@dataclass
class Dataset:
    """Prepared interactions: index 0 of items and intents is padding, never a real
    item."""

    name: str
    mapping: ColumnMapping
    filters: Filters
    user_ids: np.ndarray  # (U,) original user labels
    item_ids: np.ndarray  # (V+1,) original item labels, [0] is padding
    intent_names: np.ndarray  # (C+1,) intent labels as text, [0] is padding
    item_intent: np.ndarray  # (V+1,) intent index of each item, 0 for padding
    offsets: np.ndarray  # (U+1,) user u's items are items[offsets[u]:offsets[u+1]]
    items: np.ndarray  # (N,) item index of each interaction, by user then time
    item_names: np.ndarray | None = None  # (V+1,) readable names, when mapped
    stats: dict = field(default_factory=dict)
    stats_before: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    hash: str = ""
    # where the data came from, for messages: the interaction file, and the file the
    # intent column was read from (the item table, or the interaction file itself)
    source: str = ""
    intent_source: str = ""

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        """V, the number of real items (the vocabulary has V+1 entries with padding)."""
        return len(self.item_ids) - 1

    @property
    def num_intents(self) -> int:
        """C, the number of intents, ``<unknown>`` included when present."""
        return len(self.intent_names) - 1

    @property
    def num_known_intents(self) -> int:
        return self.num_intents - int(UNKNOWN_INTENT in set(self.intent_names[1:]))

    def intent_origin(self) -> tuple[str, str | None]:
        """The file the intent column was read from and the column (None: no intent
        column is chosen), to name in messages."""
        return self.intent_source or self.source, self.mapping.intent

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def guess_mapping(
    raw: RawData, user: str | None = None, item: str | None = None
) -> ColumnMapping:
    """Pick columns by their usual names, around any the caller already knows; raise
    naming the columns when no guess is safe."""
    inter_cols = list(raw.interactions.columns)
    item_cols = list(raw.items.columns) if raw.items is not None else []
    user = user or _pick(inter_cols, _USER_NAMES)
    item = item or _pick(inter_cols, _ITEM_NAMES)
    for role, column, flag in (("users", user, "--user"), ("items", item, "--item")):
        if column is None:
            raise DataError(
                f"{raw.interactions_path}: cannot tell which column holds the {role} "
                f"(columns: {', '.join(inter_cols)}). Name it with {flag}."
            )
        if column not in inter_cols:
            raise DataError(
                f"{raw.interactions_path}: there is no column {column!r} for the "
                f"{role} (columns: {', '.join(inter_cols)}). Name the right one with "
                f"{flag}."
            )
    time = _pick(inter_cols, _TIME_NAMES)
    attrs = [c for c in item_cols if c != item] or [
        c for c in inter_cols if c not in (user, item, time)
    ]
    intent = _pick(attrs, _INTENT_NAMES)
    if intent is None and raw.items is not None:
        intent = next((c for c in attrs if c not in _NAME_NAMES), None)
    name = _pick(attrs, _NAME_NAMES)
    candidates = tuple(c for c in attrs if c not in (intent, name))
    return ColumnMapping(user, item, time, intent, candidates, name)


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def prepare(
    raw: RawData,
    mapping: ColumnMapping | None = None,
    filters: Filters | None = None,
    name: str = "",
    progress: Callable[[float, str], None] | None = None,
) -> Dataset:
    """Map, clean, filter and index the raw tables into a :class:`Dataset`.

    ``progress(fraction, stage)`` is told after each stage; a caller that wants to
    cancel raises from it.
    """
    report = progress or (lambda _fraction, _stage: None)
    mapping = mapping or guess_mapping(raw)
    filters = filters or Filters()
    _check_filters(filters)
    notes: list[str] = []

    # interactions in file order with a numeric sort key for time
    frame = _mapped_interactions(raw, mapping)
    report(0.25, "joining item attributes")
    frame, intent_path = _attach_intent(raw, mapping, frame, notes)
    report(0.45, "statistics before the filters")
    stats_before = compute_stats(frame)
    report(0.6, "filtering")

    # duplicates, then items below k, then short users; each filter once
    frame = _filter(frame, filters, notes)
    if frame.empty:
        raise DataError(
            f"{raw.interactions_path}: no interactions are left after the filters "
            f"(min item frequency {filters.min_item_freq}, min user length "
            f"{filters.min_user_len}). Lower them."
        )

    # time order within each user; ties keep file order or a seeded shuffle
    report(0.7, "ordering by time")
    frame = _order(frame, filters)
    report(0.8, "indexing")
    dataset = _index(frame, mapping, filters, name or raw.interactions_path.parent.name)
    report(0.9, "statistics")
    dataset.source = str(raw.interactions_path)
    dataset.intent_source = str(intent_path or raw.interactions_path)
    dataset.stats = compute_stats(frame)
    dataset.stats_before = stats_before
    _note_short_users(dataset, notes)
    dataset.notes = notes
    dataset.hash = content_hash(frame)
    return dataset


def _check_filters(filters: Filters) -> None:
    if filters.duplicates not in ("keep", "first", "last"):
        raise DataError(
            f"duplicates must be keep, first or last, not {filters.duplicates!r}."
        )
    if filters.tie_break not in ("file", "random"):
        raise DataError(f"tie_break must be file or random, not {filters.tie_break!r}.")
    if filters.min_item_freq < 1 or filters.min_user_len < 1:
        raise DataError("min item frequency and min user length must be at least 1.")


def _require_column(
    frame: pd.DataFrame, column: str, path, role: str, flag: str
) -> None:
    if column not in frame.columns:
        raise DataError(
            f"{path}: there is no column {column!r} for the {role} "
            f"(columns: {', '.join(map(str, frame.columns))}). Choose one with {flag}."
        )


def _mapped_interactions(raw: RawData, mapping: ColumnMapping) -> pd.DataFrame:
    """Rows of (user, item, time) as text labels and a float time, file order kept."""
    inter, path = raw.interactions, raw.interactions_path
    if len(inter) == 0:
        raise DataError(
            f"{path}: the table has a header but no rows. Nothing to train on."
        )
    _require_column(inter, mapping.user, path, "user", "--user")
    _require_column(inter, mapping.item, path, "item", "--item")
    if mapping.user == mapping.item:
        raise DataError(
            f"{path}: the column {mapping.user!r} is mapped as both user and item. "
            "Choose two different columns with --user and --item."
        )
    frame = pd.DataFrame(
        {
            "user": _labels(inter[mapping.user]),
            "item": _labels(inter[mapping.item]),
            "row": np.arange(len(inter), dtype=np.int64),
        }
    )
    for role in ("user", "item"):
        missing = frame[role].isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise DataError(
                f"{path}, row {row + 2}: the {role} column {getattr(mapping, role)!r} "
                "is "
                "empty. Fill it in or remove the row."
            )
    if mapping.time is not None:
        _require_column(inter, mapping.time, path, "time", "--time")
        frame["time"] = parse_time(inter[mapping.time], path, mapping.time)
    else:
        frame["time"] = 0.0
    return frame


def _labels(column: pd.Series) -> pd.Series:
    """Ids as text so that 7, '7' and 7.0 from different files name the same entity."""
    if pd.api.types.is_float_dtype(column) and column.dropna().mod(1).eq(0).all():
        column = column.astype("Int64")
    return column.astype("string").str.strip()


def parse_time(column: pd.Series, path, name: str) -> np.ndarray:
    """Numbers (Unix seconds, positions) as they are; dates and datetimes as seconds."""
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values)
    else:
        text = column.astype("string").str.strip()
        numeric = pd.to_numeric(text, errors="coerce")
        if numeric.notna().sum() >= 0.5 * text.notna().sum():
            values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            stamps = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
            values = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
            values = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}, row {row + 2}: the time column {name!r} holds "
            f"{column.iloc[row]!r}, "
            f"which is neither a number nor a date ({int(bad.sum())} such rows). Fix "
            "those "
            "rows, choose another time column with --time, or pass --time none to use "
            "file "
            "order."
        )
    return values


def _attach_intent(
    raw: RawData, mapping: ColumnMapping, frame: pd.DataFrame, notes: list[str]
) -> tuple[pd.DataFrame, Path | None]:
    """Add intent (and name) labels per row; items without one get ``<unknown>``.
    Also returns the file the attributes were read from (None: none were wanted)."""
    frame["intent"] = pd.array([pd.NA] * len(frame), dtype="string")
    frame["name"] = pd.array([pd.NA] * len(frame), dtype="string")
    wanted = [c for c in (mapping.intent, mapping.name) if c is not None]
    if not wanted:
        frame["intent"] = UNKNOWN_INTENT
        return frame, None
    table, path = _attribute_table(raw, mapping, wanted)
    per_item = _one_row_per_item(table, mapping, wanted, path, notes)
    joined = frame[["item"]].merge(
        per_item, how="left", left_on="item", right_index=True
    )
    if table is not raw.interactions and not frame["item"].isin(per_item.index).any():
        raise DataError(
            f"{path}: none of the {frame['item'].nunique()} items of the interactions "
            f"is in this item table (column {mapping.item!r}: the interactions name "
            f"items like {_examples(frame['item'])}, the item table like "
            f"{_examples(pd.Series(per_item.index))}). Both files must name items the "
            "same way."
        )
    if mapping.intent is not None:
        frame["intent"] = joined[mapping.intent].to_numpy()
    if mapping.name is not None:
        frame["name"] = joined[mapping.name].to_numpy()
    if mapping.intent is None:
        frame["intent"] = UNKNOWN_INTENT
        return frame, path
    unknown = frame["intent"].fillna("").str.len().eq(0).to_numpy(dtype=bool)
    if unknown.any():
        items = frame.loc[unknown, "item"].nunique()
        notes.append(
            f"{items} item(s) ({int(unknown.sum())} interactions) have no value in the "
            f"intent column {mapping.intent!r}; they share the intent {UNKNOWN_INTENT}."
        )
        frame.loc[unknown, "intent"] = UNKNOWN_INTENT
    return frame, path


def _attribute_table(raw: RawData, mapping: ColumnMapping, wanted: list[str]):
    """The table holding the item attributes: the item table, else the interactions."""
    for table, path in (
        (raw.items, raw.items_path),
        (raw.interactions, raw.interactions_path),
    ):
        if table is not None and all(c in table.columns for c in wanted):
            if mapping.item not in table.columns:
                raise DataError(
                    f"{path}: the item table has no column {mapping.item!r} to join on "
                    f"(columns: {', '.join(map(str, table.columns))}). Rename its item "
                    "column to match the interactions."
                )
            return table, path
    missing = [c for c in wanted if not _has_column(raw, c)]
    where = raw.items_path or raw.interactions_path
    columns = list(raw.items.columns) if raw.items is not None else []
    columns += list(raw.interactions.columns)
    role, flag = (
        ("intent", "--intent")
        if missing[0] == mapping.intent
        else ("item name", "--name-column")
    )
    raise DataError(
        f"{where}: there is no column {missing[0]!r} for the {role} (columns: "
        f"{', '.join(dict.fromkeys(map(str, columns)))}). Choose one with {flag}."
    )


def _examples(labels: pd.Series, count: int = 3) -> str:
    return ", ".join(repr(str(v)) for v in labels.drop_duplicates().head(count))


def _has_column(raw: RawData, column: str) -> bool:
    return column in raw.interactions.columns or (
        raw.items is not None and column in raw.items.columns
    )


def _one_row_per_item(table, mapping, wanted, path, notes) -> pd.DataFrame:
    """Item attributes by item label; the first value wins where rows disagree."""
    attrs = pd.DataFrame({"item": _labels(table[mapping.item])})
    for column in wanted:
        values = table[column]
        if (
            values.dtype == "string"
            and column == mapping.intent
            and _is_token_seq(values)
        ):
            # a RecBole token_seq (e.g. several genres): the first token is the intent
            values = values.str.split(" ").str[0]
            notes.append(
                f"The intent column {column!r} lists several values per item; the "
                "first "
                "of each list is used."
            )
        attrs[column] = (
            _labels(values) if column == mapping.intent else values.astype("string")
        )
    conflicts = 0
    if mapping.intent is not None:
        per_item = attrs.groupby("item", sort=False)[mapping.intent].nunique()
        conflicts = int((per_item > 1).sum())
    if conflicts:
        notes.append(
            f"{conflicts} item(s) in {path.name} carry more than one value of "
            f"{mapping.intent!r}; the first value of each is used."
        )
    return attrs.drop_duplicates("item", keep="first").set_index("item")


def _is_token_seq(values: pd.Series) -> bool:
    sample = values.dropna().head(200)
    return len(sample) > 0 and sample.str.contains(" ").mean() > 0.5


def _filter(frame: pd.DataFrame, filters: Filters, notes: list[str]) -> pd.DataFrame:
    if filters.duplicates != "keep":
        before = len(frame)
        frame = frame.drop_duplicates(["user", "item"], keep=filters.duplicates)
        if len(frame) < before:
            notes.append(f"Dropped {before - len(frame)} repeated (user, item) rows.")
    if filters.min_item_freq > 1:
        counts = frame["item"].map(frame["item"].value_counts())
        before = frame["item"].nunique()
        frame = frame[counts.to_numpy() >= filters.min_item_freq]
        notes.append(
            f"Dropped {before - frame['item'].nunique()} items with fewer than "
            f"{filters.min_item_freq} interactions."
        )
    if filters.min_user_len > 1:
        counts = frame["user"].map(frame["user"].value_counts())
        before = frame["user"].nunique()
        frame = frame[counts.to_numpy() >= filters.min_user_len]
        notes.append(
            f"Dropped {before - frame['user'].nunique()} users with fewer than "
            f"{filters.min_user_len} interactions."
        )
    return frame


def _order(frame: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    if filters.tie_break == "random":
        rng = np.random.default_rng(filters.tie_seed)
        frame = frame.assign(tie=rng.permutation(len(frame)))
    else:
        frame = frame.assign(tie=frame["row"].to_numpy())
    return frame.sort_values(["user", "time", "tie"], kind="stable").reset_index(
        drop=True
    )


def _index(frame: pd.DataFrame, mapping, filters, name: str) -> Dataset:
    """Replace labels by contiguous indices: users from 0, items and intents from 1."""
    user_codes, user_ids = pd.factorize(frame["user"], sort=True)
    item_codes, item_labels = pd.factorize(frame["item"], sort=True)
    intent_codes, intent_labels = pd.factorize(frame["intent"], sort=True)

    # one intent per item: every row of an item carries the same intent label by now
    item_intent = np.zeros(len(item_labels) + 1, dtype=np.int64)
    item_intent[item_codes + 1] = intent_codes + 1
    item_names = None
    if mapping.name is not None:
        item_names = np.empty(len(item_labels) + 1, dtype=object)
        item_names[0] = PAD
        item_names[item_codes + 1] = frame["name"].fillna("").to_numpy(dtype=object)

    counts = np.bincount(user_codes, minlength=len(user_ids))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Dataset(
        name=name,
        mapping=mapping,
        filters=filters,
        user_ids=np.asarray(user_ids, dtype=object),
        item_ids=np.concatenate([[PAD], np.asarray(item_labels, dtype=object)]),
        intent_names=np.concatenate([[PAD], np.asarray(intent_labels, dtype=object)]),
        item_intent=item_intent,
        offsets=offsets,
        items=(item_codes + 1).astype(np.int64),
        item_names=item_names,
    )


def _note_short_users(dataset: Dataset, notes: list[str]) -> None:
    lengths = dataset.lengths()
    short = int((lengths < 3).sum())
    if short == dataset.num_users:
        # the item filter and dropped duplicates shorten histories; say so when used
        filters = dataset.filters
        filtered = filters.min_item_freq > 1 or filters.duplicates != "keep"
        fix = "Use a log with longer histories per user"
        if filtered:
            fix += ", or lower --min-item-freq or keep duplicates (--duplicates keep)"
        raise DataError(
            f"{dataset.source}: no user in the user column {dataset.mapping.user!r} "
            f"has 3 or more interactions{' after the filters' if filtered else ''} "
            f"(the longest history has {int(lengths.max())}), so nothing can be "
            "validated or tested: leave-last-2-out holds out each user's last two. "
            f"{fix}."
        )
    if short:
        notes.append(
            f"{short} user(s) have fewer than 3 interactions; they are used for "
            "training only and are not evaluated."
        )


def content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the ordered (user, item, intent) rows: the identity of this data
    version."""
    rows = pd.util.hash_pandas_object(frame[["user", "item", "intent"]], index=False)
    digest = hashlib.sha256(rows.to_numpy().tobytes())
    return digest.hexdigest()
