"""The engine's own models: shapes, padding, causal masking, CaFe's joint score, tiny
end-to-end runs and seeded reproducibility."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.batches import TrainSampler, eval_inputs
from engine.errors import ConfigError
from engine.evaluation import evaluate
from engine.experiment import DataSpec, RunSpec, build_run, make_trainer, model_context
from engine.models import build_model
from engine.models.base import EvalBatch
from engine.training import Finished

TINY = {"hidden": 16, "max_len": 20, "dropout": 0.0}
LEARNED = ("sasrec", "cafe")


def tiny_model(name, split, **overrides):
    torch.manual_seed(0)
    config = {**TINY, **overrides} if name in LEARNED else {}
    return build_model(name, config, model_context(split)).eval()


def eval_batch(split, users=8):
    evaluated, seqs, _ = eval_inputs(split, "test", 20)
    return EvalBatch(torch.as_tensor(evaluated[:users]), seqs[:users])


@pytest.mark.parametrize("name", ["pop", "intentpop", "sasrec", "cafe"])
def test_scores_have_one_column_per_item_and_never_recommend_padding(name, ciao_split):
    model = tiny_model(name, ciao_split)
    batch = eval_batch(ciao_split)
    V = ciao_split.dataset.num_items
    with torch.no_grad():
        scores = model.score_all(batch)
        candidates = torch.tensor([[0, 1, 2]] * len(batch.users))
        picked = model.score_candidates(batch, candidates)
    assert scores.shape == (len(batch.users), V + 1)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()
    assert torch.isneginf(picked[:, 0]).all()
    assert scores.argmax(dim=1).min() > 0


@pytest.mark.parametrize("name", LEARNED)
def test_candidate_scores_equal_the_full_scores(name, ciao_split):
    model = tiny_model(name, ciao_split)
    batch = eval_batch(ciao_split)
    candidates = torch.randint(1, ciao_split.dataset.num_items + 1, (8, 30))
    with torch.no_grad():
        full = model.score_all(batch).gather(1, candidates)
        picked = model.score_candidates(batch, candidates)
    torch.testing.assert_close(picked, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LEARNED)
def test_changing_a_future_item_leaves_earlier_positions_alone(name, ciao_split):
    model = tiny_model(name, ciao_split)
    batch = eval_batch(ciao_split, users=4)
    changed = batch.seq.clone()
    changed[:, -1] = changed[:, -1] % ciao_split.dataset.num_items + 1
    with torch.no_grad():
        before = model.encode(batch.seq)
        after = model.encode(changed)
    if isinstance(before, tuple):
        before, after = before[0], after[0]
    # (B, L, D): every position but the last is untouched by the last item
    torch.testing.assert_close(before[:, :-1], after[:, :-1])
    assert not torch.allclose(before[:, -1], after[:, -1])


@pytest.mark.parametrize("name", LEARNED)
def test_loss_is_finite_and_trains(name, ciao_split):
    model = tiny_model(name, ciao_split).train()
    sampler = TrainSampler(ciao_split, 20)
    generator = torch.Generator().manual_seed(0)
    batch = sampler.batch(torch.arange(32), generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(10):
        losses = model(batch)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        first = first if first is not None else float(losses["loss"].detach())
    assert torch.isfinite(losses["loss"])
    assert float(losses["loss"].detach()) < first
    if name == "cafe":
        assert set(losses) == {"item", "intent", "loss"}


def test_cafe_joint_score_uses_each_candidates_own_intent(ciao_split):
    model = tiny_model("cafe", ciao_split)
    batch = eval_batch(ciao_split)
    with torch.no_grad():
        parts = model.explain(batch)
        scores = model.score_all(batch)
        r, r_c = model._last(batch)
        intent_logits = r_c @ model.intent_embed.weight.T  # (B, C+1)
    own = intent_logits[:, model.item_intent]  # (B, V+1)
    expected = F.logsigmoid(own) + F.logsigmoid(parts["item_logit"])
    torch.testing.assert_close(scores[:, 1:], expected[:, 1:])
    torch.testing.assert_close(parts["score"][:, 1:], expected[:, 1:])
    # the intent distribution is over real intents only, and sums to one
    assert parts["intent_distribution"].shape[1] == ciao_split.dataset.num_intents
    torch.testing.assert_close(
        parts["intent_distribution"].sum(dim=1), torch.ones(len(batch.users))
    )


@pytest.mark.parametrize(
    "switches",
    [
        {"fuse_intent": False, "intent_loss": False, "local_heads": 0},
        {"fuse_intent": True, "intent_loss": False, "joint_inference": False},
        {"fuse_intent": False, "intent_loss": True, "local_heads": 0},
        {"joint_inference": False},
    ],
)
def test_every_ablation_combination_trains_and_scores(switches, ciao_split):
    model = tiny_model("cafe", ciao_split, **switches).train()
    batch = TrainSampler(ciao_split, 20).batch(
        torch.arange(16), torch.Generator().manual_seed(0)
    )
    losses = model(batch)
    losses["loss"].backward()
    assert ("intent" in losses) == switches.get("intent_loss", True)
    with torch.no_grad():
        scores = model.eval().score_all(eval_batch(ciao_split))
    assert torch.isfinite(scores[:, 1:]).all()


def test_cafe_all_switches_off_has_no_intent_encoder(ciao_split):
    model = tiny_model(
        "cafe",
        ciao_split,
        fuse_intent=False,
        intent_loss=False,
        joint_inference=False,
        local_heads=0,
    )
    assert not hasattr(model, "intent_encoder")


def test_intent_models_refuse_data_without_intents(ciao_split):
    context = model_context(ciao_split)
    context.num_known_intents = 1
    with pytest.raises(ConfigError, match="fewer than two distinct"):
        build_model("cafe", TINY, context)


def test_constant_model_scores_zero_not_full_marks(ciao_split):
    model = tiny_model("pop", ciao_split)
    model.counts.zero_()
    result = evaluate(model, ciao_split, "test", "sampled", (5, 10))
    assert result.metrics["HR@10"] == 0.0 and result.metrics["MRR"] < 0.011


def run_tiny(path, model, seed, epochs=3):
    spec = RunSpec(
        DataSpec(str(path)),
        model,
        TINY if model in LEARNED else {},
        {"epochs": epochs, "seed": seed, "device": "cpu", "min_epochs": 0},
    )
    run = build_run(spec)
    result = None
    for event in make_trainer(run).run():
        if isinstance(event, Finished):
            result = event.result
    return result


@pytest.mark.parametrize("name", ["pop", "intentpop", "sasrec", "cafe"])
def test_tiny_end_to_end_run(name, ciao_small):
    result = run_tiny(ciao_small, name, seed=0)
    assert set(result.test.metrics) >= {"HR@5", "NDCG@5", "MRR", "NDCG@10"}
    assert all(0.0 <= v <= 1.0 for v in result.test.metrics.values())
    assert len(result.test.per_user) == len(result.valid.per_user) > 0
    if name in LEARNED:
        assert result.epochs_trained == 3 and 1 <= result.best_epoch <= 3


def test_same_seed_gives_same_metrics_on_cpu(ciao_small):
    first = run_tiny(ciao_small, "cafe", seed=5, epochs=2)
    again = run_tiny(ciao_small, "cafe", seed=5, epochs=2)
    other = run_tiny(ciao_small, "cafe", seed=6, epochs=2)
    assert first.test.metrics == again.test.metrics
    assert first.test.metrics != other.test.metrics
