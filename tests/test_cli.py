"""The ``train`` command end to end, its help, and each bad input's message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.cli import build_parser, main
from tests.conftest import ROOT

TINY = ["--hidden", "16", "--max-len", "20", "--threads", "1", "--no-store"]


def train(capsys, *args):
    code = main(["train", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_end_to_end(ciao_small, capsys):
    code, out, err = train(
        capsys,
        "--data", str(ciao_small), "--model", "cafe", "--epochs", "2", "--seed", "3",
        "--also-evaluate", "full", "--json", *TINY,
    )  # fmt: skip
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["model"] == "cafe" and summary["protocol"] == "sampled"
    assert summary["seed"] == 3 and summary["epochs_trained"] == 2
    assert len(summary["dataset_hash"]) == 64 and summary["seconds"] > 0
    for split in ("valid", "test"):
        assert set(summary[split]) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10", "MRR"}
        assert 0 <= summary[split]["NDCG@5"] <= 1
    assert set(summary["also"]["full"]) == {"valid", "test"}
    # the progress bar and the notes go to stderr, never into the JSON line
    assert "epoch" in err


def test_quiet_full_protocol_pop(ciao_small, capsys):
    code, out, err = train(
        capsys, "--data", str(ciao_small), "--model", "pop", "--protocol", "full",
        "--json", "--quiet", "--no-store",
    )  # fmt: skip
    assert code == 0 and "epoch" not in err
    assert json.loads(out.splitlines()[-1])["protocol"] == "full"


def test_help_documents_every_flag_with_its_default():
    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    text = train_parser.format_help()
    for action in train_parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings
            if action.default not in (None, False) and action.help:
                assert "default" in action.format_usage() or "(default" in text
    assert "--local-heads" in text and "(default: 200)" in text


def write(path, text):
    path.write_text(text)
    return path


LONG = "".join(f"u{u},i{i},{i}\n" for u in range(4) for i in range(1, 6))


@pytest.mark.parametrize(
    "files, flags, message",
    [
        ({}, ["--data", "{tmp}/missing.csv"], "no such file"),
        ({"e.csv": "user_id,item_id,timestamp\n"}, [], "header but no rows"),
        ({"e.csv": ""}, [], "empty"),
        (
            {"e.csv": "user_id,item_id,timestamp\nu1,i1,x\nu1,i2,y\nu1,i3,z\n"},
            [],
            "time column 'timestamp' holds 'x'",
        ),
        (
            {"e.csv": "user_id,product,timestamp\nu1,i1,1\n"},
            [],
            "cannot tell which column holds the items",
        ),
        (
            {"e.csv": "user_id,product,timestamp\nu1,i1,1\n"},
            ["--item", "item_id"],
            "no column 'item_id'",
        ),
        (
            {"e.csv": "user_id,item_id,timestamp\nu1,i1,1\nu2,i2,1\nu1,i3,2\n"},
            [],
            "No user has 3 or more interactions",
        ),
        (
            {
                "e.csv": "user_id,item_id,timestamp\n" + LONG,
                "items.csv": "item_id,category\n"
                + "".join(f"i{i},a\n" for i in range(1, 6)),
            },
            ["--items", "{tmp}/items.csv", "--model", "cafe"],
            "fewer than two distinct values",
        ),
        (
            {"e.csv": "user_id,item_id,timestamp\n" + LONG},
            ["--intent", "genre"],
            "no column 'genre'",
        ),
        ({"e.csv": "user_id,item_id\n\x00\x00\x01,\x02\n"}, [], "binary"),
    ],
)
def test_bad_input_gives_one_clear_message(tmp_path, capsys, files, flags, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    if "--data" not in flags:
        flags = ["--data", str(tmp_path / "e.csv"), *flags]
    if "--model" not in flags:
        flags += ["--model", "sasrec"]
    code, out, err = train(capsys, *flags, "--epochs", "1", *TINY)
    assert code == 2
    assert message.lower() in err.lower()
    assert "Traceback" not in err and err.startswith("error: ")


def test_items_without_intent_are_reported_and_trained(tmp_path, capsys):
    write(tmp_path / "interactions.csv", "user_id,item_id,timestamp\n" + LONG)
    write(tmp_path / "items.csv", "item_id,category\ni1,a\ni2,b\n")
    code, out, err = train(
        capsys, "--data", str(tmp_path), "--model", "cafe", "--epochs", "1", *TINY
    )
    assert code == 0
    assert "3 item(s) (12 interactions) have no value in the intent column" in err


def test_a_real_process_exits_non_zero_without_traceback(tmp_path):
    finished = subprocess.run(
        [sys.executable, "main.py", "train", "--data", str(tmp_path / "nothing.csv"),
         "--model", "sasrec", "--no-store"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert finished.returncode == 2
    assert "no such file" in finished.stderr and "Traceback" not in finished.stderr
