"""The CaFe paper's baselines: shapes, padding and the mask token never recommended,
what each position may see, NOVA's value path, SSE-PT's replacement, and a tiny
end-to-end run of each through the experiment API and the command line."""

from __future__ import annotations

import json
import math

import pytest
import torch

from app import cli
from engine.experiment import DataSpec, RunSpec, build_run, make_trainer
from engine.models import build_model
from engine.models.base import EvalBatch, ModelContext, TrainBatch
from engine.models.bert4rec import AUTO_FULL_MAX_ITEMS
from engine.training import Finished

BASELINES = ["bert4rec", "ssept", "locker", "nova", "fdsa", "bertf", "lockerf"]
CAUSAL = ["ssept", "fdsa"]
BIDIRECTIONAL = ["bert4rec", "locker", "nova", "bertf", "lockerf"]
V, C, U, L = 40, 4, 6, 8
SMALL = {"max_len": L, "hidden": 16}


def tiny_context(num_items: int = V) -> ModelContext:
    generator = torch.Generator().manual_seed(1)
    item_intent = torch.randint(1, C + 1, (num_items + 1,), generator=generator)
    item_intent[0] = 0
    return ModelContext(
        num_items, C, U, item_intent, torch.ones(num_items + 1), num_known_intents=C
    )


def tiny_model(name: str, **overrides):
    torch.manual_seed(0)
    return build_model(name, {**SMALL, **overrides}, tiny_context())


def tiny_batches() -> tuple[TrainBatch, EvalBatch]:
    generator = torch.Generator().manual_seed(2)
    seq = torch.randint(1, V + 1, (3, L + 1), generator=generator)
    seq[0, :5] = 0  # a short, left-padded history
    neg = torch.randint(1, V + 1, (3, L), generator=generator).masked_fill(
        seq[:, 1:] == 0, 0
    )
    neg_intents = torch.randint(1, C + 1, (3, L), generator=generator)
    users = torch.tensor([0, 3, 5])
    return TrainBatch(users, seq, neg, neg_intents), EvalBatch(users, seq[:, 1:])


@pytest.mark.parametrize("name", BASELINES)
def test_shapes_and_padding_never_recommended(name):
    model = tiny_model(name)
    train, batch = tiny_batches()

    losses = model(train)
    assert losses["loss"].dim() == 0 and torch.isfinite(losses["loss"])
    losses["loss"].backward()

    model.eval()
    with torch.no_grad():
        scores = model.score_all(batch)
        candidates = torch.tensor([[0, 1, 2], [5, 0, V], [7, 8, 9]])
        picked = model.score_candidates(batch, candidates)
        maps = model.attention_maps(batch)
    # (B, V+1): items 0..V only, so the mask token (V+1) of BERT-style models is absent
    assert scores.shape == (3, V + 1)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()
    assert torch.isneginf(picked[candidates == 0]).all()
    real = candidates != 0
    assert torch.allclose(picked[real], scores.gather(1, candidates)[real], atol=1e-5)
    assert maps and all(
        w.shape[0] == 3 and w.shape[-2:] == (L, L) for w in maps.values()
    )
    assert model.item_embeddings().shape[0] == V + 1


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_position_never_sees_a_later_item(name):
    model = tiny_model(name).eval()
    _, batch = tiny_batches()
    changed = batch.seq.clone()
    changed[:, 5] = changed[:, 5] % V + 1
    with torch.no_grad():
        if name == "ssept":
            before, after = (model.encode(batch.users, s) for s in (batch.seq, changed))
        else:
            before, after = model.encode(batch.seq), model.encode(changed)
    assert torch.equal(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_masked_position_sees_both_sides(name):
    model = tiny_model(name).eval()
    seq = torch.randint(1, V + 1, (1, L), generator=torch.Generator().manual_seed(3))
    seq[0, 4] = model.mask_id
    with torch.no_grad():
        base = model.encode(seq)[0, 4]
        for side in (2, 6):  # one item left of the mask, one right of it
            changed = seq.clone()
            changed[0, side] = changed[0, side] % V + 1
            assert not torch.allclose(model.encode(changed)[0, 4], base)


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_recommendation_appends_a_mask_to_the_last_items(name):
    model = tiny_model(name).eval()
    _, batch = tiny_batches()
    inputs = model.eval_input(batch.seq)
    assert torch.equal(inputs[:, :-1], batch.seq[:, 1:])
    assert (inputs[:, -1] == model.mask_id).all()

    # the oldest item makes room for the mask; the second-oldest is read
    with torch.no_grad():
        base = model.score_all(batch)
        oldest, second = batch.seq.clone(), batch.seq.clone()
        oldest[1:, 0] = oldest[1:, 0] % V + 1
        second[1:, 1] = second[1:, 1] % V + 1
        assert torch.equal(model.score_all(EvalBatch(batch.users, oldest)), base)
        assert not torch.allclose(model.score_all(EvalBatch(batch.users, second)), base)


def test_cloze_masks_only_items_every_row_and_is_seeded():
    model = tiny_model("bert4rec", mask_prob=0.3)
    train, _ = tiny_batches()
    seq = train.seq[:, 1:]
    torch.manual_seed(5)
    masked, picked = model.cloze(seq)
    torch.manual_seed(5)
    again, _ = model.cloze(seq)
    assert torch.equal(masked, again)
    assert not (picked & (seq == 0)).any()  # padding is never masked
    assert picked.any(1).all()  # every sequence enters the loss
    assert torch.equal(masked[picked], torch.full_like(seq[picked], V + 1))
    assert torch.equal(masked[~picked], seq[~picked])

    # share of masked items follows mask_prob on a long batch
    long = torch.randint(1, V + 1, (200, 50))
    _, picked = tiny_model("bert4rec", mask_prob=0.3, max_len=50).cloze(long)
    assert abs(picked.float().mean().item() - 0.3) < 0.02


def test_softmax_choice_full_below_threshold_and_sampled_above():
    model = tiny_model("bert4rec")
    assert model.full_softmax
    assert not tiny_model("bert4rec", loss="sampled").full_softmax
    big = build_model("bert4rec", SMALL, tiny_context(AUTO_FULL_MAX_ITEMS + 1))
    assert not big.full_softmax

    # both losses train: finite, with gradients reaching the item table
    train, _ = tiny_batches()
    for loss in ("full", "sampled"):
        model = tiny_model("bert4rec", loss=loss, sampled_negatives=8)
        value = model(train)["loss"]
        value.backward()
        assert torch.isfinite(value) and model.embed.tokens.weight.grad.abs().sum() > 0


def test_nova_intents_move_attention_but_never_the_values():
    model = tiny_model("nova").eval()
    _, batch = tiny_batches()
    attention = model.encoder.attention_modules()[0]
    values = []
    handle = attention.v.register_forward_hook(lambda m, i, o: values.append(o))
    try:
        with torch.no_grad():
            maps = model.attention_maps(batch)
            model.item_intent[1:-1] = model.item_intent[1:-1] % C + 1  # other intents
            changed = model.attention_maps(batch)
    finally:
        handle.remove()
    # layer 1: same value vectors, different attention weights
    assert torch.equal(values[0], values[1])
    first = "item layer 1"
    assert not torch.allclose(maps[first], changed[first])


def test_ssept_replaces_ids_with_the_configured_chance_in_training_only():
    torch.manual_seed(0)
    context = tiny_context(num_items=5000)
    context.num_users = 5000
    model = build_model("ssept", {**SMALL, "sse_user": 0.4, "sse_item": 0.2}, context)
    users = torch.arange(4000)
    seq = torch.randint(1, 5001, (4000, L))
    seq[:, :2] = 0

    new_users, new_seq = model.train().stochastic_shared(users, seq)
    assert abs((new_users != users).float().mean().item() - 0.4) < 0.03
    assert abs((new_seq != seq)[:, 2:].float().mean().item() - 0.2) < 0.02
    assert (new_seq[:, :2] == 0).all()  # padding stays padding

    same_users, same_seq = model.eval().stochastic_shared(users, seq)
    assert torch.equal(same_users, users) and torch.equal(same_seq, seq)


@pytest.fixture(scope="module")
def ciao_dataset(ciao_small):
    from engine.data import load_raw, prepare

    return prepare(load_raw(ciao_small))


@pytest.mark.parametrize("name", BASELINES)
def test_tiny_end_to_end_run(name, ciao_small, ciao_dataset):
    spec = RunSpec(
        DataSpec(str(ciao_small)),
        name,
        {"hidden": 16, "max_len": 20},
        {"epochs": 2, "seed": 0, "device": "cpu"},
    )
    run = build_run(spec, ciao_dataset)
    events = list(make_trainer(run).run())
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result.epochs_trained == 2
    assert all(math.isfinite(v) for v in result.test.metrics.values())
    assert result.test.metrics["HR@10"] > 0


@pytest.mark.parametrize("name", ["bert4rec", "ssept", "lockerf"])
def test_train_command_runs_each_kind(name, ciao_small, capsys):
    code = cli.main(
        [
            "train",
            "--data",
            str(ciao_small),
            "--model",
            name,
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--max-len",
            "10",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--json",
            "--quiet",
            "--no-store",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == name and summary["epochs_trained"] == 1
    assert all(math.isfinite(v) for v in summary["test"].values())
