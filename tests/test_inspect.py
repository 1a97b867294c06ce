"""engine.inspect against the engine's own scoring and evaluation, on a tiny real
run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.batches import eval_inputs
from engine.evaluation import evaluate
from engine.experiment import DataSpec, RunSpec, build_run, make_trainer
from engine.inspect import (
    LENGTH_EDGES,
    ProjectionParams,
    breakdown,
    bucket_labels,
    frequency_filter,
    inspect_user,
    load_trained,
    project,
    user_index,
)
from engine.models.base import EvalBatch


@pytest.fixture(scope="module")
def trained_cafe(ciao_split, tmp_path_factory):
    """CaFe, hidden 16, two epochs on 300 Ciao users, with its best checkpoint."""
    folder = tmp_path_factory.mktemp("cafe-run")
    spec = RunSpec(
        DataSpec(path="unused"),
        "cafe",
        {"hidden": 16, "max_len": 20},
        {"epochs": 2, "min_epochs": 0, "seed": 0, "device": "cpu"},
    ).resolved()
    run = build_run(spec, ciao_split.dataset)
    result = None
    for event in make_trainer(run, checkpoint_dir=folder).run():
        result = getattr(event, "result", result)
    return spec, run, result, folder / "best.pt"


def test_checkpoint_reload_scores_like_the_trained_model(trained_cafe):
    spec, run, _, checkpoint = trained_cafe
    loaded = load_trained(spec, checkpoint, dataset=run.dataset)
    users, seqs, _ = eval_inputs(run.split, "test", 20, run.split.eval_users[:8])
    batch = EvalBatch(torch.from_numpy(users), seqs)
    run.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model.score_all(batch), run.model.score_all(batch)
        )


def test_top_k_equals_the_engines_own_ranking(trained_cafe):
    spec, run, result, checkpoint = trained_cafe
    loaded = load_trained(spec, checkpoint, dataset=run.dataset)
    user = int(loaded.split.eval_users[5])
    seen = user_index(loaded.dataset, str(loaded.dataset.user_ids[user]))
    assert seen == user

    view = inspect_user(loaded, user, "test", k=7)

    # the engine's own scores for this user, history excluded, best first
    users, seqs, targets = eval_inputs(loaded.split, "test", 20, np.array([user]))
    with torch.no_grad():
        scores = loaded.model.score_all(EvalBatch(torch.from_numpy(users), seqs))[0]
    history = loaded.dataset.sequence(user)[:-1]
    scores[torch.from_numpy(history)] = float("-inf")
    expected = torch.topk(scores, 7).indices.numpy()
    assert view.top["item"].tolist() == expected.tolist()
    np.testing.assert_allclose(view.top["score"], scores[expected].numpy(), rtol=1e-5)

    # parts multiply to the joint score: log sigma(item) + log sigma(intent)
    joint = np.log(view.top["item_prob"]) + np.log(view.top["intent_prob"])
    np.testing.assert_allclose(joint, view.top["score"], rtol=1e-4, atol=1e-5)

    # the rank is the one the evaluator stored for this user
    stored = result.test.per_user.set_index("user").loc[user]
    assert view.target == targets[0]
    assert view.rank == stored["rank"]
    assert view.candidates == stored["candidates"]
    assert np.array_equal(view.history, history)

    # next-intent distribution over every intent, and attention over real positions
    dist = view.intent_distribution
    assert len(dist) == loaded.dataset.num_intents
    assert dist["probability"].sum() == pytest.approx(1.0, abs=1e-5)
    real = min(len(history), 20)
    assert view.attention
    for weights in view.attention.values():
        assert weights.shape[1:] == (real, real)
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-4)


def test_breakdown_weighted_mean_is_the_overall_mean(trained_cafe):
    _, _, result, _ = trained_cafe
    per_user = result.test.per_user
    for by, edges in (
        ("target_train_freq", (0, 1, 2, 6, 21)),
        ("history_len", LENGTH_EDGES),
    ):
        table = breakdown(per_user, by, "NDCG@5", edges)
        assert table["users"].sum() == len(per_user)
        filled = table[table["users"] > 0]
        weighted = (filled["mean"] * filled["users"]).sum() / filled["users"].sum()
        assert weighted == pytest.approx(result.test.metrics["NDCG@5"], abs=1e-12)
    assert bucket_labels((0, 1, 2, 6, 21)) == ["0", "1", "2\u20135", "6\u201320", ">20"]


def test_frequency_filter_picks_per_intent_extremes():
    intents = np.array([0, 1, 1, 1, 1, 2, 2])
    counts = np.array([0, 5, 1, 9, 3, 2, 7])
    assert frequency_filter(intents, counts, "frequent", 0.5).tolist() == [
        False, True, False, True, False, False, True,
    ]  # fmt: skip
    assert frequency_filter(intents, counts, "infrequent", 0.5).tolist() == [
        False, False, True, False, True, True, False,
    ]  # fmt: skip
    assert frequency_filter(intents, counts).sum() == 6


def test_projection_completes_and_cancels(trained_cafe):
    _, run, _, _ = trained_cafe
    embeddings = run.model.item_embeddings().numpy()[1:301]
    pca = project(embeddings, ProjectionParams("pca"))
    assert pca.shape == (300, 2) and np.isfinite(pca).all()

    fractions = []
    tsne = project(
        embeddings, ProjectionParams("tsne", perplexity=10, iterations=500), None,
        fractions.append,
    )  # fmt: skip
    assert tsne.shape == (300, 2) and np.isfinite(tsne).all()
    assert fractions == [0.5, 1.0]

    # a cancel ends the child process at once, not after the chunk it is in
    import multiprocessing
    import time

    wide = np.random.default_rng(0).normal(size=(4000, 16))
    asked = time.monotonic() + 0.5
    reported = []
    with pytest.raises(InterruptedError):
        project(
            wide,
            ProjectionParams("tsne", iterations=5000),
            lambda: time.monotonic() > asked,
            reported.append,
        )
    assert reported == []  # stopped inside the first chunk
    assert not [p for p in multiprocessing.active_children() if p.name == "cafe-tsne"]


def test_evaluate_of_one_user_matches_all_users(trained_cafe):
    """inspect_user relies on evaluating one user alone giving that user's row."""
    _, run, result, _ = trained_cafe
    user = run.split.eval_users[3]
    alone = evaluate(run.model, run.split, "test", "sampled", users=np.array([user]))
    stored = result.test.per_user.set_index("user").loc[user]
    assert alone.per_user["rank"].iloc[0] == stored["rank"]


@pytest.mark.parametrize("model", ["sasrec", "ssept", "fdsa"])
def test_bce_models_show_their_item_probability(ciao_split, model):
    """Models trained with binary cross-entropy score an item by a logit whose sigmoid
    is its probability: the top-K shows it beside the score."""
    spec = RunSpec(
        DataSpec(path="unused"),
        model,
        {"hidden": 16, "max_len": 20},
        {"seed": 0, "device": "cpu"},
    ).resolved()
    run = build_run(spec, ciao_split.dataset)
    run.model.eval()
    view = inspect_user(run, int(ciao_split.eval_users[0]), "test", k=5)
    expected = 1 / (1 + np.exp(-view.top["score"].to_numpy()))
    np.testing.assert_allclose(view.top["item_prob"], expected, rtol=1e-5)


def test_a_user_is_found_by_id_or_by_a_part_only_their_id_holds():
    from app.gui.run_source import synthetic_dataset
    from engine.errors import DataError

    dataset = synthetic_dataset(users=30)  # ids u0 .. u29
    ids = list(dataset.user_ids.astype(str))
    # an exact id wins over the ids it is a part of (u1 of u10..u19)
    assert user_index(dataset, " u1 ") == ids.index("u1")
    assert user_index(dataset, "29") == ids.index("u29")
    with pytest.raises(DataError, match=r"12 users .* have '1' in their id"):
        user_index(dataset, "1")
    with pytest.raises(DataError, match="no user 'x9'"):
        user_index(dataset, "x9")
