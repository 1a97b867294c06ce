"""Data-parallel training across processes (SPEC §4), on the CPU with gloo.

One test launches the train command under torchrun exactly as a user would; the other
joins two processes into a group by hand to look inside the trainer: the ranks keep
identical weights, draw identical batches, and a stop request on one rank stops both
after the same batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from storage import open_store
from storage import queries as q
from tests.conftest import ROOT


def test_torchrun_trains_one_run_that_rank_zero_reports_and_stores(
    ciao_small, tmp_path
):
    db = tmp_path / "runs.db"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc_per_node", "2", "main.py", "--db", str(db), "train",
        "--data", str(ciao_small), "--model", "sasrec", "--epochs", "2",
        "--min-epochs", "0", "--hidden", "16", "--device", "cpu", "--threads", "1",
        "--json", "--quiet",
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]

    # one JSON line, from rank 0, of a run trained by two processes
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["processes"] == 2 and summary["epochs_trained"] == 2
    assert 0.0 <= summary["test"]["NDCG@5"] <= 1.0

    # and one stored run with both epochs on its curves
    store = open_store(str(db))
    with store.session() as session:
        (run,) = q.list_runs(session)
        assert run.id == summary["run"] and run.status == "finished"
        curves = q.run_curves(session, run.id)
    store.dispose()
    losses = curves[(curves["split"] == "train") & (curves["name"] == "loss")]
    assert sorted(losses["epoch"]) == [1, 2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_rank(rank: int, world: int, port: int, data: str, out: str) -> None:
    """One rank: train SASRec, the second rank alone asking to stop at the fifth
    batch of the second epoch; save what the test compares."""
    from engine.experiment import DataSpec, RunSpec, build_run, make_trainer
    from engine.training import BatchDone, Finished

    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    torch.set_num_threads(1)
    # a broken agreement would leave one rank waiting: fail in a minute, not hang
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        spec = RunSpec(
            DataSpec(path=data),
            "sasrec",
            {"hidden": 16, "max_len": 20},
            {"epochs": 3, "batch_size": 32, "seed": 3, "device": "cpu"},
        ).resolved()
        run = build_run(spec)
        at = {"epoch": 0, "batch": 0}
        trainer = make_trainer(
            run, should_stop=lambda: rank == 1 and (at["epoch"], at["batch"]) >= (2, 5)
        )
        users, done, reason = [], [], None
        step = trainer._step

        def recording_step(batch):
            users.append(batch.users.clone())
            return step(batch)

        trainer._step = recording_step
        for event in trainer.run():
            if isinstance(event, BatchDone):
                at.update(epoch=event.epoch, batch=event.batch)
                done.append((event.epoch, event.batch))
            elif isinstance(event, Finished):
                reason = event.result.stop_reason
        torch.save(
            {
                "weights": run.model.state_dict(),
                "batches": done,
                "users": users,
                "reason": reason,
            },
            os.path.join(out, f"rank{rank}.pt"),
        )
    finally:
        from engine import distributed

        distributed.teardown()
    # done and saved: end as main.py does (os._exit), without the interpreter's
    # teardown of gloo's threads, which aborted a rank now and then under load
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.mark.slow
def test_ranks_stay_in_step_and_stop_together(ciao_small, tmp_path):
    mp.spawn(
        train_rank,
        args=(2, free_port(), str(ciao_small), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    first, second = (
        torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)
    )

    # the stop asked for by rank 1 alone ended both after the same batch
    assert first["reason"] == second["reason"] == "cancelled"
    assert first["batches"] == second["batches"]
    assert first["batches"][-1] == (2, 5)

    # each trained on its own half of every batch, never the same sequence twice
    for mine, theirs in zip(first["users"], second["users"]):
        assert not set(mine.tolist()) & set(theirs.tolist())
        assert abs(len(mine) - len(theirs)) <= 1

    # averaged gradients keep the weights identical on both ranks
    for name, tensor in first["weights"].items():
        assert torch.equal(tensor, second["weights"][name]), name
