"""Training progress on stderr when it is not a terminal: one line per epoch with the
estimated time left."""

from __future__ import annotations

import io

import pytest

from app import progress
from app.progress import ProgressPrinter
from engine.training import EpochDone, Started


class Clock:
    """A stand-in for time.perf_counter that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", fake)
    return fake


def epoch_lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line.startswith("epoch")]


def test_each_epoch_line_holds_the_time_left_at_the_runs_pace(clock):
    stream = io.StringIO()  # not a terminal: no bar, one line per epoch
    printer = ProgressPrinter("NDCG@5", stream=stream)
    printer(Started("cpu", start_epoch=0, epochs=10, batches_per_epoch=4, parameters=9))

    # 20 s for two epochs (validation included): 10 s each, 8 epochs to go
    clock.now = 12.0
    printer(EpochDone(1, {"loss": 0.5}, 12.0))
    clock.now = 20.0
    printer(EpochDone(2, {"loss": 0.25}, 8.0))
    clock.now = 100.0
    printer(EpochDone(10, {"loss": 0.125}, 8.0))

    lines = epoch_lines(stream)
    assert lines[0].endswith("ETA <= 1m48s (9 epochs left; patience may stop sooner)")
    assert lines[1] == (
        "epoch 2/10  loss 0.2500  (8.0s)  "
        "ETA <= 1m20s (8 epochs left; patience may stop sooner)"
    )
    # nothing is left after the last epoch
    assert lines[2] == "epoch 10/10  loss 0.1250  (8.0s)"


def test_a_resumed_run_counts_its_pace_from_where_it_resumed(clock):
    stream = io.StringIO()
    printer = ProgressPrinter("NDCG@5", stream=stream)
    printer(Started("cpu", start_epoch=5, epochs=9, batches_per_epoch=1, parameters=9))
    clock.now = 3.0
    printer(EpochDone(6, {"loss": 1.0}, 3.0))
    assert epoch_lines(stream) == [
        "epoch 6/9  loss 1.0000  (3.0s)  "
        "ETA <= 0m09s (3 epochs left; patience may stop sooner)"
    ]


def test_quiet_prints_nothing(clock):
    stream = io.StringIO()
    printer = ProgressPrinter("NDCG@5", stream=stream, quiet=True)
    printer(Started("cpu", start_epoch=0, epochs=2, batches_per_epoch=1, parameters=9))
    printer(EpochDone(1, {"loss": 1.0}, 1.0))
    assert stream.getvalue() == ""
