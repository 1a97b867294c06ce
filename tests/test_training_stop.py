"""Stopping the trainer inside an evaluation: the stop is honoured there, and a resume
from the checkpoint it leaves ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import pytest

from engine.experiment import DataSpec, RunSpec, build_run, load_dataset, make_trainer
from engine.training import Finished, Validated

SETTINGS = {
    "epochs": 40,
    "patience": 1,
    "min_epochs": 0,
    "batch_size": 64,
    "seed": 2,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def ciao(ciao_small):
    spec = DataSpec(path=str(ciao_small))
    return spec, load_dataset(spec)


def train(ciao, folder, resume=False, should_stop=None, observe=None):
    spec, dataset = ciao
    run = build_run(RunSpec(spec, "sasrec", {"hidden": 16}, SETTINGS), dataset)
    trainer = make_trainer(run, checkpoint_dir=folder, should_stop=should_stop)
    if resume:
        assert trainer.resume()
    result = None
    for event in trainer.run():
        if observe is not None:
            observe(event)
        if isinstance(event, Finished):
            result = event.result
    return result


def test_a_stop_in_the_final_evaluation_after_patience_resumes_to_it(ciao, tmp_path):
    reference = train(ciao, tmp_path / "reference")
    assert reference.stop_reason == "patience"

    # patience 1: the first validation without improvement is the last one
    worse = []

    def observe(event):
        if isinstance(event, Validated) and not event.improved:
            worse.append(event)

    stopped = train(
        ciao, tmp_path / "run", should_stop=lambda: bool(worse), observe=observe
    )
    assert stopped.stop_reason == "cancelled" and stopped.test is None
    assert stopped.epochs_trained == reference.epochs_trained

    # resume trains no further epoch: it only evaluates the best checkpoint
    resumed = train(ciao, tmp_path / "run", resume=True)
    assert resumed.stop_reason == "patience"
    assert resumed.epochs_trained == reference.epochs_trained
    assert resumed.best_epoch == reference.best_epoch
    assert resumed.valid.metrics == reference.valid.metrics
    assert resumed.test.metrics == reference.test.metrics


def test_a_diverging_run_ends_with_a_message_not_a_traceback(ciao, tmp_path):
    """A loss that is no longer a number is a user's problem (the learning rate),
    reported like any bad setting: the CLI and the worker show its message."""
    from engine.errors import CafeError

    spec, dataset = ciao
    settings = SETTINGS | {"lr": 1e12, "clip_norm": 0.0, "epochs": 3}
    run = build_run(RunSpec(spec, "sasrec", {"hidden": 16}, settings), dataset)
    trainer = make_trainer(run, checkpoint_dir=tmp_path)
    with pytest.raises(CafeError, match=r"diverged.*--lr"):
        for _event in trainer.run():
            pass
