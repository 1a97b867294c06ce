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
    assert summary["threads"] == 1  # as --threads asked: results depend on it
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
    from app.cli import HelpFormatter

    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    text = train_parser.format_help()
    formatter = HelpFormatter("main.py train")
    for action in train_parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings
            # each flag's own help names its default where it has one
            shown = formatter._get_help_string(action) % vars(action)
            if action.default not in (None, False):
                assert "default" in shown, (action.option_strings, shown)
    assert "--local-heads" in text and "(default: 200)" in text
    assert "(default: )" not in text  # an empty default reads "none"


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
            "e.csv: no user in the user column 'user_id' has 3 or more interactions",
        ),
        (
            {
                "e.csv": "user_id,item_id,timestamp\n" + LONG,
                "items.csv": "item_id,category\n"
                + "".join(f"i{i},a\n" for i in range(1, 6)),
            },
            ["--items", "{tmp}/items.csv", "--model", "cafe"],
            "items.csv: the intent column 'category' has one value only (fewer than "
            "two distinct values), but cafe reads intents",
        ),
        (
            {"e.csv": "user_id,item_id,timestamp\n" + LONG},
            ["--intent", "genre"],
            "no column 'genre'",
        ),
        ({"e.csv": "user_id,item_id\n\x00\x00\x01,\x02\n"}, [], "binary"),
        (
            {"e.csv": "user_id,item_id,timestamp\n" + LONG},
            ["--device", "cuda:x"],
            "unknown device 'cuda:x'",
        ),
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


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--model", "cafe", "--hidden", "10"],
            "--hidden 10 must be divisible by the 4 attention heads (--heads 1 + "
            "--local-heads 3) of cafe's item encoder; use --hidden 12",
        ),
        (
            ["--model", "cafe", "--local-heads", "0", "--heads", "3", "--hidden", "16"],
            "--hidden 16 must be divisible by the 3 attention heads (--heads 3) of "
            "cafe; use --hidden 18",
        ),
        (
            # 9 splits over 2 + 1 item heads, not over the intent encoder's 2
            ["--model", "cafe", "--heads", "2", "--local-heads", "1", "--hidden", "9"],
            "the 2 attention heads (--heads 2) of cafe's intent encoder",
        ),
        (
            ["--model", "locker", "--local-heads", "2", "--hidden", "16"],
            "(--heads 1 + --local-heads 2) of locker; use --hidden 18",
        ),
        (["--model", "sasrec", "--heads", "3", "--hidden", "16"], "(--heads 3)"),
        (["--model", "bert4rec", "--hidden", "15"], "(--heads 2) of bert4rec"),
    ],
)
def test_heads_that_do_not_split_the_hidden_size_fail_before_reading(
    tmp_path, capsys, flags, message
):
    # the data does not exist: the heads are checked before it would be read
    code, out, err = train(
        capsys, "--data", str(tmp_path / "missing.csv"), *flags, "--no-store"
    )
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err and "Traceback" not in err


def test_every_item_without_intent_fails_intent_models_only(tmp_path, capsys):
    write(tmp_path / "interactions.csv", "user_id,item_id,timestamp\n" + LONG)
    write(tmp_path / "items.csv", "item_id,category\n" + "".join(
        f"i{i},\n" for i in range(1, 6)
    ))  # fmt: skip
    data = ["--data", str(tmp_path), "--epochs", "1", *TINY]

    code, out, err = train(capsys, *data, "--model", "cafe")
    assert code == 2
    assert (
        f"error: {tmp_path / 'items.csv'}: the intent column 'category' has no value "
        "for any item (fewer than two distinct values), but cafe reads intents."
    ) in err
    assert "Choose an item column with several values as the intent (--intent)" in err
    assert "5 item(s) (20 interactions) have no value in the intent column" in err

    # an item-only model trains on the same data, the missing intents noted
    code, out, err = train(capsys, *data, "--model", "sasrec")
    assert code == 0 and "have no value in the intent column" in err


def test_no_intent_column_names_the_file(tmp_path, capsys):
    path = write(tmp_path / "e.csv", "user_id,item_id,timestamp\n" + LONG)
    code, out, err = train(
        capsys, "--data", str(path), "--intent", "none", "--model", "fdsa",
        "--epochs", "1", *TINY,
    )  # fmt: skip
    assert code == 2
    assert f"{path}: no intent column is chosen, but fdsa reads intents." in err


def test_undecodable_file_gives_one_message(tmp_path, capsys, caplog):
    # 0xe9 is no UTF-8 here and 0x81 is undefined in Windows-1252
    path = tmp_path / "e.csv"
    path.write_bytes(b"user_id,item_id,timestamp\nu\xe9,i\x81,1\n")
    code, out, err = train(
        capsys, "--data", str(path), "--model", "sasrec", "--epochs", "1", *TINY
    )
    assert code == 2
    assert err == (
        f"error: {path}: unreadable text encoding: byte 27 is not UTF-8 and byte 30 "
        "is not Windows-1252 either. Re-save the file as UTF-8.\n"
    )
    # no warning that it is being read as Windows-1252 after all
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_db_follows_every_store_command_too(tmp_path, ciao_small, capsys):
    from app.cli import STORE_COMMANDS

    db = str(tmp_path / "after.db")
    code = main(
        ["train", "--data", str(ciao_small), "--model", "pop", "--device", "cpu"]
        + ["--quiet", "--json", "--db", db]
    )
    assert code == 0
    run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"]
    assert main(["runs", "--db", db]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in listed[1:]] == [[str(run), "pop"]]
    # given on both sides, the one after the command wins
    assert main(["--db", str(tmp_path / "other.db"), "runs", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines() == listed

    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    for name in STORE_COMMANDS:
        assert "--db DB" in choices[name].format_help(), name


def test_a_stop_while_train_reads_its_data_stores_nothing(
    tmp_path, ciao_small, capsys, monkeypatch
):
    from app.worker import StopFlag
    from storage import open_store
    from storage import queries as q

    db = str(tmp_path / "stop.db")
    flags = ["--data", str(ciao_small), "--model", "sasrec", "--epochs", "3"]
    flags += ["--hidden", "16", "--device", "cpu", "--quiet", "--db", db]

    # SIGTERM while the data is read: the command ends with no run stored
    monkeypatch.setattr(StopFlag, "__call__", lambda _flag: True)
    code, out, err = train(capsys, *flags)
    assert code == 130 and "stopped before the run was stored" in err
    store = open_store(db)
    with store.session() as session:
        assert q.list_runs(session) == []

    # once the run is stored, before its first batch: it is cancelled, resumable
    polls = []

    def stop_after_reading(_flag) -> bool:
        polls.append(True)
        return len(polls) > 1

    monkeypatch.setattr(StopFlag, "__call__", stop_after_reading)
    code, out, err = train(capsys, *flags)
    assert code == 0 and "continue it with: main.py resume" in err
    with store.session() as session:
        [run] = q.list_runs(session)
    store.dispose()
    assert run.status == "cancelled" and run.epochs == 0


def test_a_diverging_run_is_one_message_and_exit_2(ciao_small, capsys):
    code, _out, err = train(
        capsys, "--data", str(ciao_small), "--model", "sasrec", "--lr", "1e12",
        "--clip-norm", "0", "--epochs", "3", "--min-epochs", "1", "--quiet", *TINY,
    )  # fmt: skip
    assert code == 2
    assert err.splitlines()[-1].startswith("error: ") and "diverged" in err
    assert "Traceback" not in err
