"""The command line: ``python main.py [COMMAND] ...``; no command opens the window."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import Any

from app import commands, store_commands
from engine.data.dataset import Filters
from engine.errors import CafeError
from engine.models import REGISTRY, make_config
from engine.training import TrainConfig

log = logging.getLogger(__name__)

EXIT_USAGE = 2
# the sub-commands that open the run store: each takes --db after its name too
STORE_COMMANDS = ("train", "compare", "worker", "resume", "runs")
DB_HELP = (
    "Run store: a SQLite file or SQLAlchemy URL (default: $CAFE_DB, else the user "
    "data directory)."
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.WARNING),
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None) or commands.open_workbench
    try:
        return handler(args)
    except CafeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """``main.py``'s entry: run the command and exit with its status.

    A worker process ends at once when its run is recorded (stdout, stderr and the
    log flushed, the store closed): the interpreter's own teardown of torch and its
    thread pools took 1-2 s here, and a cancel in the window waits for the exit.
    """
    argv = sys.argv[1:]
    code = main(argv)
    if (
        getattr(build_parser().parse_args(argv), "handler", None)
        is store_commands.worker
    ):
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each flag's default, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        if action.default == "":
            return f"{action.help} (default: none)"
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description=(
            "CaFe Workbench: train CaFe and its baselines on interaction logs, "
            "compare runs, "
            "inspect recommendations. Without a command, opens the workbench window."
        ),
    )
    parser.add_argument(
        "--log-level", default="warning", help="warning, info or debug."
    )
    parser.add_argument("--db", default=None, help=DB_HELP)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_train_command(sub)
    from app.compare_command import add_compare_command  # imports app.cli itself

    add_compare_command(sub)
    commands.add_other_commands(sub)
    store_commands.add_store_commands(sub)
    for name in STORE_COMMANDS:
        add_db_argument(sub.choices[name])
    return parser


def add_db_argument(p: argparse.ArgumentParser) -> None:
    """``--db`` after the sub-command, as well as before it; the later one wins.

    Left out, it sets nothing (SUPPRESS), so the value given before the sub-command,
    or the default, stays.
    """
    p.add_argument_group("run store").add_argument(
        "--db", default=argparse.SUPPRESS, help=DB_HELP
    )


# ---- train
# ----------------------------------------------------------------------------------


def add_train_command(sub) -> None:
    p = sub.add_parser(
        "train",
        help="Train and evaluate one model headless.",
        description=(
            "Train one model on one dataset, evaluate the best validation epoch on "
            "test, "
            "and store the run. Progress goes to stderr; with --json the last stdout "
            "line "
            "is one JSON object with the final metrics."
        ),
        formatter_class=HelpFormatter,
    )
    add_data_arguments(p)
    p.add_argument(
        "--model", required=True, choices=sorted(REGISTRY), help="Model to train."
    )
    add_config_arguments(p.add_argument_group("training"), TrainConfig, prefix="")
    add_model_arguments(
        p.add_argument_group("model hyperparameters (default: the model's)")
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="Print final metrics as JSON last."
    )
    out.add_argument("--quiet", action="store_true", help="No progress on stderr.")
    out.add_argument(
        "--threads",
        type=int,
        default=0,
        help="Torch CPU threads (0: one per core).",
    )
    out.add_argument(
        "--no-store",
        action="store_true",
        help="Do not record the run in the run store (checkpoints in a temp folder).",
    )
    p.set_defaults(handler=commands.train)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        required=True,
        help="Interaction file (CSV/TSV/Parquet/.inter) or a folder holding "
        "interactions.csv + items.csv or a RecBole .inter/.item pair.",
    )
    g.add_argument(
        "--items", default=None, help="Item table, when not found beside --data."
    )
    g.add_argument("--user", default=None, help="User column (default: guessed).")
    g.add_argument("--item", default=None, help="Item column (default: guessed).")
    g.add_argument(
        "--time",
        default=None,
        help="Time column (default: guessed; 'none' = file order).",
    )
    g.add_argument(
        "--intent",
        default=None,
        help="Item column used as intent, e.g. category or seller (default: guessed; "
        "'none' = no intent).",
    )
    g.add_argument(
        "--name-column", default=None, help="Column with readable item names."
    )
    defaults = Filters()
    g.add_argument(
        "--min-item-freq",
        type=int,
        default=defaults.min_item_freq,
        help="Drop items with fewer interactions (the paper's k).",
    )
    g.add_argument(
        "--min-user-len",
        type=int,
        default=defaults.min_user_len,
        help="Drop users with fewer interactions.",
    )
    g.add_argument(
        "--duplicates",
        choices=("keep", "first", "last"),
        default=defaults.duplicates,
        help="Repeated (user, item) rows: keep all, or only the first or last.",
    )
    g.add_argument(
        "--tie-break",
        choices=("file", "random"),
        default=defaults.tie_break,
        help="Order of a user's rows with equal time: file order or a seeded shuffle.",
    )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(group, config_class, prefix: str = "") -> None:
    """One flag per field of a config dataclass, typed, with its help and default."""
    defaults = config_class()
    for f in dataclasses.fields(config_class):
        kind = {"int": int, "float": float, "str": str}.get(str(f.type), str)
        extra: dict[str, Any] = {}
        if "choices" in f.metadata:
            extra["choices"] = f.metadata["choices"]
            # an empty choice means none: the usage lists the others
            named = [str(c) for c in extra["choices"] if c != ""]
            if len(named) < len(extra["choices"]):
                extra["metavar"] = "{" + ",".join(named) + "}"
        group.add_argument(
            _flag(prefix + f.name),
            dest=f.name,
            type=kind,
            default=getattr(defaults, f.name),
            help=f.metadata.get("help", ""),
            **extra,
        )


def model_fields() -> dict[str, dict[str, Any]]:
    """Every hyperparameter of every model: its type, help, and default per model."""
    found: dict[str, dict[str, Any]] = {}
    for name, cls in sorted(REGISTRY.items()):
        defaults = cls.config_class()
        for f in dataclasses.fields(cls.config_class):
            entry = found.setdefault(
                f.name,
                {
                    "type": str(f.type),
                    "help": f.metadata.get("help", ""),
                    "defaults": {},
                },
            )
            entry["defaults"][name] = getattr(defaults, f.name)
    return found


def add_model_arguments(group) -> None:
    for name, entry in model_fields().items():
        values = set(map(str, entry["defaults"].values()))
        if len(values) == 1:
            default_text = f"default {values.pop()}; "
        else:
            default_text = (
                "defaults "
                + ", ".join(f"{m} {v}" for m, v in entry["defaults"].items())
                + "; "
            )
        models = ", ".join(entry["defaults"])
        help_text = f"{entry['help']} ({default_text}models: {models})"
        dest = "model__" + name
        if entry["type"] == "bool":
            group.add_argument(
                _flag(name),
                dest=dest,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            kind = {"int": int, "float": float}.get(entry["type"], str)
            group.add_argument(
                _flag(name),
                dest=dest,
                metavar=name.upper(),
                type=kind,
                default=None,
                help=help_text,
            )


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Model hyperparameters from the command line; an inapplicable one is an error."""
    chosen = REGISTRY[args.model].config_class
    allowed = {f.name for f in dataclasses.fields(chosen)}
    values = {
        key[len("model__") :]: value
        for key, value in vars(args).items()
        if key.startswith("model__") and value is not None
    }
    stray = sorted(set(values) - allowed)
    if stray:
        raise CafeError(
            f"{', '.join(_flag(s) for s in stray)} does not apply to {args.model}; its "
            f"hyperparameters are {', '.join(_flag(a) for a in sorted(allowed))}."
        )
    # bounds and the head split are checked now, before any data is read
    make_config(args.model, values)
    return values


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}


def print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, sort_keys=True))
