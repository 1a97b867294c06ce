"""``python main.py compare``: train models over seeds and tabulate them like the paper.

Every (model, configuration, seed, k) is one run, trained in this process exactly as
``train`` does. A finished run leaves ``DIR/runs/<key>.json`` (summary and full
configuration) and ``DIR/runs/<key>.per_user.parquet`` (its test per-user results);
the key hashes the model, its configuration, the training settings, the column
mapping, the filters and the content hash of the prepared data, so a rerun skips what
is done and anything changed is trained anew. An interrupted run resumes from its
checkpoint in ``DIR/runs/<key>.ckpt``. With ``--store`` each run it trains is also
recorded in the run store as ``train`` records it (curves, attention, per-user results,
checkpoint), so the workbench can compare, inspect and explore it; an interrupted run
then resumes from its stored checkpoint.

Outputs in DIR: ``table2`` (the paper's Table 2), ``significance`` (CaFe against every
baseline), ``table3-ablation`` with ``--ablation`` and ``figure4-sweep`` (+ a PNG) when
``--min-item-freq`` lists several k; each as .md, .csv and .tex; and ``runs.csv``.

``--protocol both`` trains once per run, chooses the best epoch on the sampled
validation set and reports that checkpoint under both protocols; the full-ranking
numbers are therefore of a checkpoint chosen on sampled validation (said in the table).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from app.cli import (
    HelpFormatter,
    add_config_arguments,
    add_data_arguments,
    add_model_arguments,
)
from app.commands import configure_threads, data_spec_from_args
from app.compare_runs import load_done, metrics_by_protocol, run_key, train_one
from engine import reporting
from engine.errors import ConfigError
from engine.experiment import DataSpec, RunSpec, dataset_name
from engine.models import REGISTRY, check_intents, make_config
from engine.training import TrainConfig

# set by the command itself: --seeds and --protocol replace the single-run flags
OWN_TRAIN_FIELDS = ("seed", "protocol", "also_evaluate")
PROTOCOL_CHOICES = ("sampled", "full", "both")
TARGET = "cafe"
SWEEP_REFERENCE, SWEEP_FALLBACK = "bert4rec", "sasrec"

# the paper's Table 3 ladder of switches (engine.reporting.ablation_step names each
# step): (1) fuse_intent, (2) intent_loss, (3) local heads (None: the chosen number,
# or the default), (4) joint_inference; all off is the SASRec backbone
ABLATION_LADDER: tuple[dict[str, Any], ...] = (
    {"fuse_intent": False, "intent_loss": False, "local_heads": 0,
     "joint_inference": False},
    {"fuse_intent": True, "intent_loss": False, "local_heads": 0,
     "joint_inference": False},
    {"fuse_intent": True, "intent_loss": True, "local_heads": 0,
     "joint_inference": False},
    {"fuse_intent": True, "intent_loss": True, "local_heads": None,
     "joint_inference": False},
    {"fuse_intent": True, "intent_loss": True, "local_heads": 0,
     "joint_inference": True},
    {"fuse_intent": True, "intent_loss": True, "local_heads": None,
     "joint_inference": True},
)  # fmt: skip


# ---- arguments
# ----------------------------------------------------------------------------


def add_compare_command(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="Train several models over several seeds; write paper-style tables.",
        description=(
            "Train each model with each seed (resuming what DIR already holds) and "
            "write the CaFe paper's Table 2 (mean ± std over seeds, best in bold, "
            "CaFe's improvement over the best baseline, paired significance tests), "
            "optionally the Table 3 ablation and the Figure 4 sparsity sweep, as "
            "Markdown, CSV and LaTeX. One line per finished run goes to stderr."
        ),
        formatter_class=HelpFormatter,
        # --min-item-freq is redefined below to take a list
        conflict_handler="resolve",
    )
    add_data_arguments(p)
    p.add_argument(
        "--min-item-freq",
        type=int_list,
        default="1",
        help="Minimum interactions per item k, comma-separated. Tables 2 and 3 use "
        "the first; several values also run the Figure 4 sweep of CaFe against "
        "BERT4Rec (SASRec when BERT4Rec is not available) at each k.",
    )
    g = p.add_argument_group("comparison")
    g.add_argument(
        "--models",
        type=name_list,
        default=None,
        help="Models, comma-separated (default: every registered model). intentpop, "
        "the sanity baseline, is always added. When the prepared data has fewer than "
        "two intents, the models that read intents are left out with a note, "
        "except those named here: naming one is an error, as are --ablation and a "
        "sweep, which need CaFe.",
    )
    g.add_argument("--seeds", type=int_list, default="1,2,3", help="Seeds.")
    g.add_argument(
        "--protocol",
        choices=PROTOCOL_CHOICES,
        default="sampled",
        help="Evaluation protocol; 'both' chooses epochs on sampled validation and "
        "reports both side by side.",
    )
    g.add_argument(
        "--ablation", action="store_true", help="Also run CaFe's Table 3 ladder."
    )
    g.add_argument(
        "--out", default=None, help="Output folder (default ./out/compare-DATASET)."
    )
    g.add_argument(
        "--store",
        action="store_true",
        help="Also record every run it trains in the run store (--db), as train "
        "does, so the workbench can compare, inspect and explore them; a stopped "
        "stored run of the same settings is resumed.",
    )
    g.add_argument("--threads", type=int, default=0, help="Torch CPU threads (0: all).")
    g.add_argument("--quiet", action="store_true", help="No training progress.")
    add_config_arguments(p.add_argument_group("training"), _shared_train_fields())
    add_model_arguments(
        p.add_argument_group(
            "model hyperparameters (applied to every chosen model that has them)"
        )
    )
    p.set_defaults(handler=compare)


def _shared_train_fields() -> type:
    """TrainConfig without the fields compare sets itself, for the training flags."""
    fields = [
        (f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata))
        for f in dataclasses.fields(TrainConfig)
        if f.name not in OWN_TRAIN_FIELDS
    ]
    return dataclasses.make_dataclass("CompareTrainConfig", fields)


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, not {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return list(dict.fromkeys(values))


def name_list(text: str) -> list[str]:
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected at least one model name")
    return list(dict.fromkeys(names))


# ---- what to run
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One run to do: the table column it fills, the model and its settings."""

    table: str  # "table2", "ablation" or "sweep"
    label: str
    model: str
    model_config: tuple[tuple[str, Any], ...]
    k: int
    seed: int


def chosen_models(requested: list[str] | None, dataset=None) -> list[str]:
    """The requested models in table order, intentpop added; unknown names fail.

    With the prepared ``dataset`` given and fewer than two intents in it, the models
    that read intents are left out with one note (intentpop, added by default, among
    them); a requested one is an error instead, naming the file and intent column.
    """
    available = sorted(REGISTRY, key=reporting.model_order)
    if requested is not None:
        unknown = [name for name in requested if name not in REGISTRY]
        if unknown:
            raise ConfigError(
                f"No model named {', '.join(unknown)}; registered models are "
                f"{', '.join(available)}."
            )
    models = available if requested is None else list(requested)
    added = "intentpop" not in models and "intentpop" in REGISTRY
    models += ["intentpop"] if added else []
    if dataset is not None and dataset.num_known_intents < 2:
        return without_intent_models(models, requested or [], dataset)
    if added:
        note("intentpop, the sanity baseline, is always compared; added it.")
    return sorted(models, key=reporting.model_order)


def without_intent_models(models: list[str], requested: list[str], dataset):
    """``models`` without those that read intents, for data with fewer than two;
    fails when any of them was asked for by name."""
    path, column = dataset.intent_origin()
    check_intents(requested, dataset.num_known_intents, path, column)
    skipped = [m for m in models if REGISTRY[m].needs_intents]
    if skipped:
        problem = (
            "no intent column is chosen"
            if column is None
            else f"the intent column {column!r} has fewer than two distinct values"
        )
        note(
            f"{path}: {problem}, so the models that read intents are left out: "
            f"{', '.join(skipped)}."
        )
    kept = [m for m in models if m not in skipped]
    return sorted(kept, key=reporting.model_order)


def model_settings(args: argparse.Namespace, trained: list[str]) -> dict[str, dict]:
    """Per model, the hyperparameter flags that apply to it; a flag that applies to
    none of the models to be trained is an error."""
    given = {
        key.removeprefix("model__"): value
        for key, value in vars(args).items()
        if key.startswith("model__") and value is not None
    }
    settings = {model: applicable(given, model) for model in REGISTRY}
    stray = sorted(set(given).difference(*(settings[m] for m in trained)))
    if stray:
        names = ", ".join("--" + s.replace("_", "-") for s in stray)
        raise ConfigError(f"{names} applies to none of {', '.join(trained)}.")
    return settings


def applicable(given: dict[str, Any], model: str) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(REGISTRY[model].config_class)}
    return {key: value for key, value in given.items() if key in fields}


def sweep_reference() -> str:
    if SWEEP_REFERENCE in REGISTRY:
        return SWEEP_REFERENCE
    note(
        f"{SWEEP_REFERENCE} is not registered; the sparsity sweep compares CaFe "
        f"against {SWEEP_FALLBACK} instead of the paper's BERT4Rec."
    )
    return SWEEP_FALLBACK


def plan(args: argparse.Namespace, models: list[str]) -> tuple[list[Job], str | None]:
    """Every job of this invocation, and the sweep's reference model (or None)."""
    first_k, jobs = args.min_item_freq[0], []
    reference = sweep_reference() if len(args.min_item_freq) > 1 else None
    trained = list(models)
    if args.ablation or reference is not None:
        trained.append(TARGET)
    if reference is not None:
        trained.append(reference)
    settings = model_settings(args, trained)

    def add(table, label, model, config, k):
        # bounds and the head split of every configuration, before anything trains
        make_config(model, config)
        items = tuple(sorted(config.items()))
        jobs.extend(Job(table, label, model, items, k, s) for s in args.seeds)

    # Table 2 at the first k
    for model in models:
        add("table2", model, model, settings[model], first_k)

    # Table 3: switch (3) on means the chosen local heads, or the default when 0
    if args.ablation:
        default_local = REGISTRY[TARGET].config_class().local_heads
        local = settings[TARGET].get("local_heads") or default_local
        for switches in ABLATION_LADDER:
            step = {k: (local if v is None else v) for k, v in switches.items()}
            label = reporting.ablation_step(step)
            add("ablation", label, TARGET, settings[TARGET] | step, first_k)

    # Figure 4: CaFe and the reference at every k
    if reference is not None:
        for k in args.min_item_freq:
            add("sweep", TARGET, TARGET, settings[TARGET], k)
            add("sweep", reference, reference, settings[reference], k)
    return jobs, reference


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The training flags, with the protocol the comparison asks for."""
    train = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name not in OWN_TRAIN_FIELDS
    }
    if args.protocol == "both":
        return train | {"protocol": "sampled", "also_evaluate": "full"}
    return train | {"protocol": args.protocol, "also_evaluate": ""}


def protocols_of(choice: str) -> list[str]:
    return ["sampled", "full"] if choice == "both" else [choice]


# ---- the command
# --------------------------------------------------------------------------


def note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def compare(args: argparse.Namespace) -> int:
    configure_threads(args.threads)
    prepared = prepare_data(args)
    models = chosen_models(args.models, prepared[args.min_item_freq[0]][1])
    jobs, reference = plan(args, models)
    name = dataset_name(DataSpec(path=str(args.data)))
    out = Path(args.out) if args.out else Path("out") / f"compare-{name}"
    store = None
    if args.store:
        from storage import open_store

        store = open_store(args.db)
    try:
        runs, per_user = run_jobs(args, jobs, out / "runs", store, prepared)
    finally:
        if store is not None:
            store.dispose()
    runs.to_csv(out / "runs.csv", index=False)
    written = [out / "runs.csv"]
    written += write_tables(args, name, runs, per_user, out, reference)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def prepare_data(args: argparse.Namespace) -> dict[int, tuple[DataSpec, Any]]:
    """The data spec and prepared dataset of every k, notes on stderr.

    The data is read and prepared once per k; with a seeded tie-break the first seed
    orders ties for every run, so all runs share one data version.
    """
    prepared = {}
    for k in args.min_item_freq:
        data_args = argparse.Namespace(**vars(args) | {"min_item_freq": k})
        data_args.seed = args.seeds[0]
        prepared[k] = data_spec_from_args(data_args)
        for text in prepared[k][1].notes:
            note(f"k={k}: {text}")
    return prepared


def run_jobs(
    args: argparse.Namespace,
    jobs: list[Job],
    folder: Path,
    store=None,
    prepared: dict[int, tuple[DataSpec, Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Do or find every job; one row per (job, protocol) and their per-user rows.
    With ``store`` every run trained here is also recorded in the run store;
    ``prepared`` is :func:`prepare_data`'s result, prepared here when not given."""
    train, protocols = train_settings(args), protocols_of(args.protocol)
    prepared = prepared if prepared is not None else prepare_data(args)
    # intent-aware models meeting data without intents fail before anything trains,
    # not after the item-only ones have run
    for k, (_, dataset) in prepared.items():
        models = dict.fromkeys(job.model for job in jobs if job.k == k)
        check_intents(models, dataset.num_known_intents, *dataset.intent_origin())
    done: dict[str, tuple[dict, pd.DataFrame]] = {}
    rows, users = [], []
    position = 0
    for k in args.min_item_freq:
        batch = [job for job in jobs if job.k == k]
        data, dataset = prepared[k]
        for job in batch:
            position += 1
            spec = RunSpec(
                data, job.model, dict(job.model_config), train | {"seed": job.seed}
            ).resolved()
            key = run_key(spec, dataset)
            began = time.perf_counter()
            if key in done:
                how = "same run as above"
            elif found := load_done(folder, key, spec, dataset, protocols, note):
                done[key], how = found, "done before"
            else:
                done[key] = train_one(
                    folder, key, spec, dataset, args.quiet, note, store
                )
                fitted = done[key][0]["stop_reason"] != "not trainable"
                verb = "trained" if fitted else "evaluated"
                how = f"{verb} in {time.perf_counter() - began:.1f}s"
            summary, per_user = done[key]
            found_metrics = metrics_by_protocol(summary)
            ident = {"table": job.table, "label": job.label, "model": job.model}
            ident |= {"seed": job.seed, "k": k, "key": key}
            # the run's id in the run store, where it was recorded there
            stored = {"run": summary["run"]} if "run" in summary else {}
            for protocol in protocols:
                rows.append(
                    ident | stored | {"protocol": protocol} | found_metrics[protocol]
                )
            chosen = per_user[per_user["protocol"].isin(protocols)]
            users.append(chosen.assign(**ident))
            progress_line(position, len(jobs), job, found_metrics[protocols[0]], how)
    return pd.DataFrame.from_records(rows), pd.concat(users, ignore_index=True)


def progress_line(position: int, total: int, job: Job, metrics: dict, how: str):
    shown = "  ".join(
        f"{m} {metrics[m]:.4f}" for m in reporting.TABLE_METRICS if m in metrics
    )
    print(
        f"[{position}/{total}] {job.label} seed {job.seed} k={job.k}: {shown} ({how})",
        file=sys.stderr,
        flush=True,
    )


def write_tables(args, name, runs, per_user, out: Path, reference) -> list[Path]:
    """Table 2 and the significance table, the ablation and the sweep when run;
    print the Markdown of each."""
    seeds = ", ".join(map(str, args.seeds))
    chosen_by = [reporting.CHOSEN_ON_SAMPLED] if args.protocol == "both" else []
    k = args.min_item_freq[0]
    written = []

    # Table 2 and CaFe against each baseline
    main = runs[runs["table"] == "table2"]
    main_users = per_user[per_user["table"] == "table2"]
    grid = reporting.comparison_table(
        main, main_users, title=f"{name} (k={k}): test metrics over seeds {seeds}"
    )
    grid.notes += chosen_by
    written += reporting.write_grid(grid, out, "table2")
    print(reporting.to_markdown(grid))
    if TARGET in set(main["label"]) and main["label"].nunique() > 1:
        title = f"{name} (k={k}): {TARGET} against each baseline, per-user NDCG@5"
        table = reporting.significance_table(main_users, TARGET)
        written += reporting.write_frame(table, out, "significance", title)
        print(reporting.frame_to_markdown(table, title))

    # Table 3: the ablation ladder
    ladder = runs[runs["table"] == "ablation"]
    if len(ladder):
        grid = reporting.ablation_table(
            ladder,
            reporting.ablation_order(ladder["label"]),
            title=f"{name} (k={k}): CaFe ablation over seeds {seeds}",
        )
        grid.notes += chosen_by
        written += reporting.write_grid(grid, out, "table3-ablation")
        print(reporting.to_markdown(grid))

    # Figure 4: the sparsity sweep
    sweep = runs[runs["table"] == "sweep"]
    if len(sweep):
        grid = reporting.sweep_table(
            sweep,
            per_user[per_user["table"] == "sweep"],
            TARGET,
            reference,
            title=f"{name}: {TARGET} against {reference} by minimum item frequency k",
        )
        grid.notes += chosen_by
        written += reporting.write_grid(grid, out, "figure4-sweep")
        png = plot_sweep(
            grid, out / "figure4-sweep.png", f"{name}: {TARGET}", reference
        )
        written.append(png)
        print(reporting.to_markdown(grid))
    return written


def plot_sweep(grid: reporting.Grid, path: Path, title: str, reference: str) -> Path:
    """CaFe's improvement over the reference at each k, one line per protocol and
    metric, like the paper's Figure 4."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    improvement = [c for c in grid.extra.columns if c.endswith(reporting.IMPROVEMENT)]
    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    for protocol in grid.extra.index.get_level_values("protocol").unique():
        rows = grid.extra.xs(protocol, level="protocol")
        for column in improvement:
            metric = column.removesuffix(" " + reporting.IMPROVEMENT)
            ax.plot(
                [str(k) for k in rows.index],
                rows[column].to_numpy(),
                marker="o",
                label=f"{metric} ({protocol})",
            )
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("minimum interactions per item k")
    ax.set_ylabel(f"improvement over {reference} (%)")
    ax.set_title(f"{title} vs {reference}")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
