"""Comparison tables of finished runs: the CaFe paper's Table 2, Table 3 and Figure 4.

The input is two plain tables, so the command line (runs it trained itself) and the
workbench (runs read from the store) build the very same tables:

- ``runs``: one row per finished run with ``label`` (the column it belongs to, e.g.
  ``cafe`` or an ablation step), ``model``, ``protocol``, ``seed`` and one column per
  test metric (``NDCG@5``, ``HR@5``, ``MRR``, ...); the sparsity sweep adds ``k``.
- ``per_user``: one row per (run, evaluated user) with ``label``, ``protocol``,
  ``seed``, ``user`` (and ``k``) and the per-user metric columns.

Cells are mean ± sample standard deviation (ddof=1) over seeds; one seed shows the mean
alone rather than a made-up spread of zero. The best mean of each row (Table 2) or
column (Table 3) is bold; ties at the shown precision are all bold.

Significance: CaFe and a baseline are compared user by user on the same negatives.
Within one seed a user's candidates are fixed by the dataset and the seed, whatever the
model, so per-user results are matched by (seed, user). Each user's values are then
averaged over the seeds both models share for that user, and the tests run over users:
pooling (seed, user) rows would count each user once per seed as if independent and
overstate the evidence. The paired t-test and the Wilcoxon signed-rank test (scipy)
give two p-values, the second not assuming normal differences (per-user NDCG is far
from normal: most users score 0). The "pairs" column counts users.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)

# column groups of the paper's Table 2, in its order
GROUPS: dict[str, tuple[str, ...]] = {
    "item-only": ("pop", "sasrec", "bert4rec", "ssept", "locker"),
    "intent-aware": ("intentpop", "nova", "fdsa", "bertf", "lockerf"),
    "CaFe": ("cafe",),
}
OTHER_GROUP = "other"
TABLE_METRICS = ("NDCG@5", "HR@5", "MRR")
SIGNIFICANCE_METRIC = "NDCG@5"
PROTOCOL_ORDER = ("sampled", "full")
DIGITS = 4

# extra columns shown after the mean ± std cells
BEST_BASELINE = "best baseline"
IMPROVEMENT = "improv. %"
P_TTEST = "p (t-test)"
P_WILCOXON = "p (Wilcoxon)"
PAIRS = "pairs"
SEEDS = "seeds"
# under --protocol both the best epoch is still chosen on sampled validation
CHOSEN_ON_SAMPLED = (
    "full: the checkpoint chosen on sampled validation, evaluated by full ranking"
)


def model_group(model: str) -> str:
    for group, members in GROUPS.items():
        if model in members:
            return group
    return OTHER_GROUP


def model_order(model: str) -> tuple[int, int]:
    """Sort key that lays models out as the paper's Table 2 does."""
    groups = [*GROUPS, OTHER_GROUP]
    group = model_group(model)
    members = GROUPS.get(group, ())
    return groups.index(group), members.index(model) if model in members else 99


def _ordered(values, order: Sequence[str]) -> list:
    """Distinct values, those named in ``order`` first and in that order."""
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


# ---- significance
# -----------------------------------------------------------------------------


@dataclass
class PairedTest:
    """CaFe minus a baseline over matched users: mean difference and two p-values."""

    pairs: int
    mean_diff: float
    t_pvalue: float
    wilcoxon_pvalue: float


def paired_test(a, b) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of ``a`` against ``b``.

    Degenerate inputs get exact answers instead of scipy's NaN and warnings: identical
    results give p = 1; a constant non-zero difference gives a t-test p of 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = a - b
    if len(diff) < 2:
        return PairedTest(len(diff), float(diff.mean()) if len(diff) else math.nan,
                          math.nan, math.nan)  # fmt: skip
    # differences below float noise count as none (equal ranks give equal metrics)
    tiny = 1e-12 * max(1.0, float(np.abs(diff).max()))
    if np.all(np.abs(diff) <= tiny):
        return PairedTest(len(diff), 0.0, 1.0, 1.0)
    with warnings.catch_warnings():
        # near-identical samples make scipy warn about precision; the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        if np.ptp(diff) <= tiny:
            t_p = 0.0
        else:
            t_p = float(stats.ttest_rel(a, b).pvalue)
        # zero differences (users both models miss) are dropped, Wilcoxon's own method
        w_p = float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    return PairedTest(len(diff), float(diff.mean()), t_p, w_p)


def matched_pairs(
    per_user: pd.DataFrame, label: str, other: str, metric: str, **where
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user ``metric`` of two labels, one pair per user, filtered by ``where``
    (e.g. protocol="sampled", k=5).

    Rows are first matched by (seed, user); each user's pair is then the mean of each
    label over the seeds where both have that user, so both means cover the same seeds.
    (A user is not required in every seed: the evaluated users depend on the data only,
    so they are the same in every seed of a comparison anyway.)
    """
    rows = per_user
    for column, value in where.items():
        rows = rows[rows[column] == value]
    keys = ["seed", "user"]
    left = rows.loc[rows["label"] == label, [*keys, metric]]
    right = rows.loc[rows["label"] == other, [*keys, metric]]
    both = left.merge(right, on=keys, suffixes=("_a", "_b"))
    by_user = both.groupby("user", sort=True)[[f"{metric}_a", f"{metric}_b"]].mean()
    return by_user[f"{metric}_a"].to_numpy(), by_user[f"{metric}_b"].to_numpy()


def significance_table(
    per_user: pd.DataFrame,
    target: str = "cafe",
    metric: str = SIGNIFICANCE_METRIC,
) -> pd.DataFrame:
    """CaFe against every other label, per protocol: means over matched users (each
    averaged over its seeds), difference, both p-values, the number of users and the
    seeds both labels have (where per-user results of some seeds were not kept, the
    test covers fewer seeds than the table's means)."""
    records = []
    protocols = _ordered(per_user["protocol"], PROTOCOL_ORDER)
    labels = [x for x in dict.fromkeys(per_user["label"]) if x != target]
    for protocol in protocols:
        rows = per_user[per_user["protocol"] == protocol]
        seeds_of = rows.groupby("label", sort=False)["seed"].agg(set)
        for other in labels:
            a, b = matched_pairs(per_user, target, other, metric, protocol=protocol)
            if not len(a):
                continue
            test = paired_test(a, b)
            seeds = seeds_of[target] & seeds_of[other]
            records.append(
                {
                    "protocol": protocol,
                    "baseline": other,
                    f"{target} {metric}": float(a.mean()),
                    f"baseline {metric}": float(b.mean()),
                    "mean diff": test.mean_diff,
                    P_TTEST: test.t_pvalue,
                    P_WILCOXON: test.wilcoxon_pvalue,
                    PAIRS: test.pairs,
                    SEEDS: ", ".join(str(x) for x in sorted(seeds)),
                }
            )
    return pd.DataFrame.from_records(records)


# ---- the grid of mean ± std cells
# -------------------------------------------------------------


@dataclass
class Grid:
    """A table of mean ± std cells with the best marked, plus extra columns after it.

    ``mean``, ``std``, ``count`` and ``best`` share one index (the rows) and one
    two-level column index (group, label); ``extra`` shares the row index.
    """

    title: str
    mean: pd.DataFrame
    std: pd.DataFrame
    count: pd.DataFrame
    best: pd.DataFrame
    extra: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def column_names(self) -> list[str]:
        """Header of each cell column: the label, or group and label when labels
        repeat across groups."""
        labels = [label for _, label in self.mean.columns]
        if len(set(labels)) == len(labels):
            return labels
        return [f"{group} {label}" for group, label in self.mean.columns]

    def numbers(self) -> pd.DataFrame:
        """Flat numeric table (one row per grid row) for CSV and further analysis."""
        out = self.mean.index.to_frame(index=False)
        for name, key in zip(self.column_names(), self.mean.columns):
            out[f"{name} mean"] = self.mean[key].to_numpy()
            out[f"{name} std"] = self.std[key].to_numpy()
            out[f"{name} seeds"] = self.count[key].to_numpy()
        for column in self.extra.columns:
            out[column] = self.extra[column].to_numpy()
        return out

    def cell_text(self) -> pd.DataFrame:
        """Display strings of the cells, without emphasis."""
        text = pd.DataFrame("", index=self.mean.index, columns=self.mean.columns)
        for key in self.mean.columns:
            for row in self.mean.index:
                text.loc[row, key] = _mean_std(
                    self.mean.loc[row, key],
                    self.std.loc[row, key],
                    self.count.loc[row, key],
                )
        return text

    def extra_text(self) -> pd.DataFrame:
        return pd.DataFrame(
            {c: [format_extra(c, v) for v in self.extra[c]] for c in self.extra},
            index=self.mean.index,
        )


def _mean_std(mean: float, std: float, count: float) -> str:
    if pd.isna(mean) or not count:
        return "–"
    if count < 2 or pd.isna(std):
        return f"{mean:.{DIGITS}f}"
    return f"{mean:.{DIGITS}f} ± {std:.{DIGITS}f}"


def format_extra(column: str, value) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return "–"
    if column.endswith("%"):
        return f"{value:+.1f}%"
    if column.startswith("p "):
        return "<0.001" if value < 0.001 else f"{value:.3f}"
    if column == PAIRS:
        return str(int(value))
    return f"{value:.{DIGITS}f}"


def _stats(runs: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Mean, sample std and count of ``metric`` per group of ``by``."""
    grouped = runs.groupby(by, sort=False)[metric]
    return grouped.agg(["mean", "std", "count"])


def _best_mask(mean: pd.DataFrame, axis: int) -> pd.DataFrame:
    """True where a mean equals the best of its row (axis=1) or column (axis=0) at
    the shown precision; a best of zero is no achievement and stays plain."""
    shown = mean.round(DIGITS)
    return shown.eq(shown.max(axis=axis), axis=1 - axis) & (shown > 0)


# ---- Table 2: models side by side
# -------------------------------------------------------------


def comparison_table(
    runs: pd.DataFrame,
    per_user: pd.DataFrame | None = None,
    metrics: Sequence[str] = TABLE_METRICS,
    target: str = "cafe",
    title: str = "Test metrics",
) -> Grid:
    """The paper's Table 2: rows (protocol, metric), columns models grouped item-only /
    intent-aware / CaFe, CaFe's improvement over the best baseline of each row and the
    paired tests against that baseline on the row's metric."""
    metrics = [m for m in metrics if m in runs.columns]
    protocols = _ordered(runs["protocol"], PROTOCOL_ORDER)
    model_of = dict(zip(runs["label"], runs["model"]))
    labels = sorted(model_of, key=lambda label: model_order(model_of[label]))
    columns = pd.MultiIndex.from_tuples(
        [(model_group(model_of[label]), label) for label in labels],
        names=["group", "model"],
    )
    index = pd.MultiIndex.from_product(
        [protocols, metrics], names=["protocol", "metric"]
    )
    frames = {name: pd.DataFrame(np.nan, index, columns) for name in ("mean", "std")}
    count = pd.DataFrame(0, index, columns)
    for metric in metrics:
        table = _stats(runs, ["protocol", "label"], metric)
        for (protocol, label), row in table.iterrows():
            key = (model_group(model_of[label]), label)
            frames["mean"].loc[(protocol, metric), key] = row["mean"]
            frames["std"].loc[(protocol, metric), key] = row["std"]
            count.loc[(protocol, metric), key] = row["count"]
    mean = frames["mean"]
    extra = _improvement(mean, per_user, target) if target in labels else None
    notes = []
    if target in labels and len(labels) > 1:
        notes.append(
            f"{IMPROVEMENT}: {target} over the best other model of each row; "
            "p-values: paired tests over users on the row's metric, each user's "
            f"value averaged over the seeds (matched by seed and user); {PAIRS}: the "
            "number of users."
        )
    return Grid(
        title,
        mean,
        frames["std"],
        count,
        _best_mask(mean, axis=1),
        extra if extra is not None else pd.DataFrame(index=index),
        notes,
    )


def _improvement(
    mean: pd.DataFrame, per_user: pd.DataFrame | None, target: str
) -> pd.DataFrame:
    """Per row: the best baseline, CaFe's relative improvement over it, and the paired
    tests of CaFe against it."""
    target_key = next(key for key in mean.columns if key[1] == target)
    baselines = mean.drop(columns=[target_key])
    records = []
    for row in mean.index:
        record = {BEST_BASELINE: "", IMPROVEMENT: math.nan}
        record |= {P_TTEST: math.nan, P_WILCOXON: math.nan, PAIRS: 0}
        values = baselines.loc[row].dropna()
        if len(values):
            best_key = values.idxmax()
            best = values[best_key]
            record[BEST_BASELINE] = best_key[1]
            if best > 0:
                record[IMPROVEMENT] = (mean.loc[row, target_key] / best - 1.0) * 100.0
            record |= _row_test(per_user, row, target, best_key[1])
        records.append(record)
    return pd.DataFrame.from_records(records, index=mean.index)


def _row_test(per_user, row, target: str, baseline: str) -> dict:
    protocol, metric = row
    if per_user is None or metric not in per_user.columns:
        return {}
    a, b = matched_pairs(per_user, target, baseline, metric, protocol=protocol)
    if not len(a):
        return {}
    test = paired_test(a, b)
    return {P_TTEST: test.t_pvalue, P_WILCOXON: test.wilcoxon_pvalue, PAIRS: test.pairs}


# ---- Table 3: the ablation ladder
# -------------------------------------------------------------


# CaFe's four Table 3 switches with the paper's numbers: (1) fuse the intent encoder
# into the item encoder, (2) intent loss, (3) local heads, (4) joint inference
ABLATION_SWITCHES = (
    ("fuse_intent", 1),
    ("intent_loss", 2),
    ("local_heads", 3),
    ("joint_inference", 4),
)
BACKBONE = "backbone"


def ablation_step(config: Mapping[str, Any]) -> str:
    """The Table 3 row of a CaFe configuration: ``backbone`` with every switch off,
    else ``+`` and the numbers of the switches on, e.g. ``+(1)(2)(4)``. ``local_heads``
    counts as on when it is above zero."""
    on = [number for key, number in ABLATION_SWITCHES if config.get(key)]
    return "+" + "".join(f"({n})" for n in on) if on else BACKBONE


def ablation_order(steps: Sequence[str]) -> list[str]:
    """Steps as the paper lists them: fewer switches first, then by their numbers;
    any other label (a baseline such as SASRec) before them all."""

    def key(step: str) -> tuple[int, int, tuple[int, ...]]:
        if step == BACKBONE:
            return (1, 0, ())
        if not (step.startswith("+(") and step.endswith(")")):
            return (0, 0, ())
        # "+(1)(2)(4)" -> (1, 2, 4)
        numbers = tuple(int(n) for n in step[2:-1].split(")("))
        return (1, len(numbers), numbers)

    return sorted(dict.fromkeys(steps), key=key)


def ablation_table(
    runs: pd.DataFrame,
    order: Sequence[str],
    metrics: Sequence[str] = TABLE_METRICS,
    title: str = "CaFe ablation",
) -> Grid:
    """The paper's Table 3: one row per ablation step in ``order``, columns (protocol,
    metric), the best of each column bold, and each step's NDCG@5 change over the first
    step (the backbone) in %."""
    metrics = [m for m in metrics if m in runs.columns]
    protocols = _ordered(runs["protocol"], PROTOCOL_ORDER)
    steps = [step for step in order if step in set(runs["label"])]
    columns = pd.MultiIndex.from_product(
        [protocols, metrics], names=["protocol", "metric"]
    )
    index = pd.Index(steps, name="variant")
    mean = pd.DataFrame(np.nan, index, columns)
    std = pd.DataFrame(np.nan, index, columns)
    count = pd.DataFrame(0, index, columns)
    for metric in metrics:
        for (protocol, label), row in _stats(
            runs, ["protocol", "label"], metric
        ).iterrows():
            if label in steps:
                mean.loc[label, (protocol, metric)] = row["mean"]
                std.loc[label, (protocol, metric)] = row["std"]
                count.loc[label, (protocol, metric)] = row["count"]
    extra = pd.DataFrame(index=index)
    if steps and SIGNIFICANCE_METRIC in metrics:
        for protocol in protocols:
            values = mean[(protocol, SIGNIFICANCE_METRIC)]
            base = values.iloc[0]
            change = (values / base - 1.0) * 100.0 if base > 0 else values * math.nan
            extra[f"{protocol} {SIGNIFICANCE_METRIC} vs {steps[0]} %"] = change
    return Grid(title, mean, std, count, _best_mask(mean, axis=0), extra)


# ---- Figure 4: the sparsity sweep
# -------------------------------------------------------------


def sweep_table(
    runs: pd.DataFrame,
    per_user: pd.DataFrame | None,
    target: str,
    reference: str,
    metrics: Sequence[str] = ("NDCG@5", "HR@5"),
    title: str = "Sparsity sweep",
) -> Grid:
    """The paper's Figure 4 as numbers: rows (protocol, k) for each minimum item
    frequency k, CaFe and the reference model per metric, the improvement per metric
    and the paired tests on NDCG@5."""
    metrics = [m for m in metrics if m in runs.columns]
    protocols = _ordered(runs["protocol"], PROTOCOL_ORDER)
    ks = sorted(set(runs["k"]))
    index = pd.MultiIndex.from_product([protocols, ks], names=["protocol", "k"])
    columns = pd.MultiIndex.from_product([metrics, [target, reference]])
    mean = pd.DataFrame(np.nan, index, columns)
    std = pd.DataFrame(np.nan, index, columns)
    count = pd.DataFrame(0, index, columns)
    for metric in metrics:
        table = _stats(runs, ["protocol", "k", "label"], metric)
        for (protocol, k, label), row in table.iterrows():
            if label in (target, reference):
                mean.loc[(protocol, k), (metric, label)] = row["mean"]
                std.loc[(protocol, k), (metric, label)] = row["std"]
                count.loc[(protocol, k), (metric, label)] = row["count"]
    extra = pd.DataFrame(index=index)
    for metric in metrics:
        ratio = mean[(metric, target)] / mean[(metric, reference)]
        extra[f"{metric} {IMPROVEMENT}"] = (ratio - 1.0) * 100.0
    extra = extra.replace([np.inf, -np.inf], np.nan)
    tests = [_sweep_test(per_user, target, reference, row) for row in index]
    for column in (P_TTEST, P_WILCOXON, PAIRS):
        extra[column] = [test.get(column, math.nan) for test in tests]
    best = pd.concat(
        [_best_mask(mean[[c for c in columns if c[0] == m]], axis=1) for m in metrics],
        axis=1,
    )
    return Grid(title, mean, std, count, best[columns], extra)


def _sweep_test(per_user, target: str, reference: str, row) -> dict:
    protocol, k = row
    if per_user is None or SIGNIFICANCE_METRIC not in per_user.columns:
        return {}
    a, b = matched_pairs(
        per_user, target, reference, SIGNIFICANCE_METRIC, protocol=protocol, k=k
    )
    if not len(a):
        return {}
    test = paired_test(a, b)
    return {P_TTEST: test.t_pvalue, P_WILCOXON: test.wilcoxon_pvalue, PAIRS: test.pairs}


# ---- rendering
# ----------------------------------------------------------------------------


def _row_labels(grid: Grid) -> tuple[list[str], list[list[str]]]:
    index = grid.mean.index
    names = [str(n) for n in index.names]
    rows = [
        [str(v) for v in (key if isinstance(key, tuple) else (key,))] for key in index
    ]
    return names, rows


def to_markdown(grid: Grid) -> str:
    """A GitHub-flavoured Markdown table; the best cells in **bold**."""
    names, rows = _row_labels(grid)
    cells, extra = grid.cell_text(), grid.extra_text()
    header = [*names, *grid.column_names(), *extra.columns]
    align = ["---"] * len(names) + ["---:"] * (len(header) - len(names))
    lines = [f"**{grid.title}**", ""]
    groups = _ordered([g for g, _ in grid.mean.columns], [])
    labels_only = grid.column_names() == [label for _, label in grid.mean.columns]
    if len(groups) > 1 and labels_only:
        members = {g: [lbl for gg, lbl in grid.mean.columns if gg == g] for g in groups}
        lines += [
            "Columns: " + "; ".join(f"{g}: {', '.join(members[g])}" for g in groups),
            "",
        ]
    lines += ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for i, labels in enumerate(rows):
        values = [
            f"**{cells.iat[i, j]}**" if grid.best.iat[i, j] else cells.iat[i, j]
            for j in range(cells.shape[1])
        ]
        lines.append("| " + " | ".join([*labels, *values, *extra.iloc[i]]) + " |")
    lines += [""] + [f"_{note}_" for note in grid.notes]
    return "\n".join(lines).rstrip() + "\n"


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(grid: Grid) -> str:
    """A booktabs ``tabular`` with the column groups as a spanning header row and the
    best cells in ``\\textbf``."""
    names, rows = _row_labels(grid)
    cells, extra = grid.cell_text(), grid.extra_text()
    n_left, n_cells = len(names), cells.shape[1]
    spec = "l" * n_left + "r" * (n_cells + extra.shape[1])
    lines = [
        f"% {grid.title} (needs \\usepackage{{booktabs}})",
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
    ]

    # group header spanning each run of equal groups, with rules under it
    spans, rules, start = [], [], n_left + 1
    for group in _ordered([g for g, _ in grid.mean.columns], []):
        width = sum(1 for g, _ in grid.mean.columns if g == group)
        spans.append(f"\\multicolumn{{{width}}}{{c}}{{{latex_escape(group)}}}")
        rules.append(f"\\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    pad = [""] * n_left + spans + [""] * extra.shape[1]
    lines += [" & ".join(pad) + r" \\", " ".join(rules)]
    labels = [label for _, label in grid.mean.columns]
    header = [*names, *labels, *extra.columns]
    lines += [" & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]

    # body: text-mode digits so \textbf makes the best cell bold, ± set in math
    for i, row in enumerate(rows):
        values = []
        for j in range(n_cells):
            text = latex_escape(cells.iat[i, j]).replace(" ± ", r" $\pm$ ")
            text = text.replace("–", "--")
            values.append(f"\\textbf{{{text}}}" if grid.best.iat[i, j] else text)
        others = [latex_escape(v).replace("–", "--") for v in extra.iloc[i]]
        lines.append(" & ".join([*map(latex_escape, row), *values, *others]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {note}" for note in grid.notes]
    return "\n".join(lines) + "\n"


def write_grid(grid: Grid, folder: str | Path, stem: str) -> list[Path]:
    """Write ``stem``.md, .csv and .tex into ``folder``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{ext}" for ext in ("md", "csv", "tex")]
    paths[0].write_text(to_markdown(grid), encoding="utf-8")
    grid.numbers().to_csv(paths[1], index=False)
    paths[2].write_text(to_latex(grid), encoding="utf-8")
    return paths


def frame_to_markdown(frame: pd.DataFrame, title: str) -> str:
    """A plain table (such as :func:`significance_table`) as Markdown."""
    text = frame.apply(lambda col: [format_extra(col.name, v) for v in col])
    lines = [f"**{title}**", "", "| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("| " + " | ".join("---" for _ in frame.columns) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in text.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def frame_to_latex(frame: pd.DataFrame, title: str) -> str:
    """A plain table as a booktabs ``tabular``."""
    text = frame.apply(lambda col: [format_extra(col.name, v) for v in col])
    lines = [
        f"% {title} (needs \\usepackage{{booktabs}})",
        f"\\begin{{tabular}}{{{'l' * frame.shape[1]}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    for row in text.itertuples(index=False):
        cells = [latex_escape(v).replace("–", "--") for v in row]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_frame(
    frame: pd.DataFrame, folder: str | Path, stem: str, title: str
) -> list[Path]:
    """Write a plain table as ``stem``.md, .csv and .tex; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{ext}" for ext in ("md", "csv", "tex")]
    paths[0].write_text(frame_to_markdown(frame, title), encoding="utf-8")
    frame.to_csv(paths[1], index=False)
    paths[2].write_text(frame_to_latex(frame, title), encoding="utf-8")
    return paths
