"""The compare, inspect and embedding views on real finished runs in a temporary store.

Three tiny runs on 300 Ciao users (CaFe with seeds 0 and 1, SASRec with seed 0; hidden
16, two epochs) are trained in this process through the worker's own code path, so the
views read what a real run leaves in the store.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import numpy as np
import pandas as pd
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from app.gui import dialogs, embedding_view, exports
from app.gui.compare_view import CompareView
from app.gui.embedding_view import EmbeddingView
from app.gui.inspect_view import InspectView
from app.gui.run_source import StoreSource
from app.worker import run_stored
from engine.batches import eval_inputs
from engine.experiment import DataSpec, RunSpec, load_dataset
from engine.inspect import load_trained
from engine.models.base import EvalBatch
from storage import open_store
from storage import queries as q

WAIT_MS = 60_000


def add_run(store, spec: DataSpec, dataset, model: str, seed: int, **settings) -> int:
    config = {"hidden": 16, "max_len": 20} if model in ("cafe", "sasrec") else {}
    config |= settings
    train = {"epochs": 2, "min_epochs": 0, "seed": seed, "device": "cpu"}
    run_spec = RunSpec(spec, model, config, train).resolved().to_dict()

    def create(session):
        dataset_id = q.register_dataset(session, spec.to_dict(), dataset)
        return q.create_run(session, run_spec, dataset_id)

    run_id = store.transact(create)
    run_stored(store, run_id, dataset=dataset)
    return run_id


@pytest.fixture(scope="module")
def store_runs(tmp_path_factory, ciao_small):
    store = open_store(str(tmp_path_factory.mktemp("views") / "runs.db"))
    spec = DataSpec(path=str(ciao_small))
    dataset = load_dataset(spec)
    ids = {
        "cafe0": add_run(store, spec, dataset, "cafe", 0),
        "cafe1": add_run(store, spec, dataset, "cafe", 1),
        "sasrec": add_run(store, spec, dataset, "sasrec", 0),
    }
    yield store, ids
    store.dispose()


@pytest.fixture()
def no_dialogs(monkeypatch):
    """A modal box would hang offscreen; any error box fails the test instead."""

    def fail(_parent, title, message):
        raise AssertionError(f"{title}: {message}")

    monkeypatch.setattr(dialogs, "show_error", fail)


def stored_test(store, run_id: int) -> dict[str, float]:
    with store.session() as session:
        return q.get_run(session, run_id).test


def test_compare_table_holds_the_stored_metrics(qtbot, store_runs, no_dialogs):
    store, ids = store_runs
    view = CompareView(StoreSource(store))
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.compared, timeout=WAIT_MS):
        view.compare([ids["cafe0"], ids["cafe1"], ids["sasrec"]])

    # one column per configuration: CaFe's two seeds as mean and sample std
    grid = view.grid
    cafe = [stored_test(store, ids[k]) for k in ("cafe0", "cafe1")]
    sasrec = stored_test(store, ids["sasrec"])
    for metric in ("NDCG@5", "HR@5", "MRR"):
        row = ("sampled", metric)
        values = [c[metric] for c in cafe]
        assert grid.mean.loc[row, ("CaFe", "cafe")] == pytest.approx(np.mean(values))
        assert grid.std.loc[row, ("CaFe", "cafe")] == pytest.approx(
            np.std(values, ddof=1)
        )
        assert grid.mean.loc[row, ("item-only", "sasrec")] == pytest.approx(
            sasrec[metric]
        )
        improvement = (np.mean(values) / sasrec[metric] - 1) * 100
        assert grid.extra.loc[row, "improv. %"] == pytest.approx(improvement)

    # the widget shows those numbers, the best of the row in bold
    header = [
        view.table.horizontalHeaderItem(j).text()
        for j in range(view.table.columnCount())
    ]
    row = next(
        i
        for i in range(view.table.rowCount())
        if view.table.item(i, 1).text() == "NDCG@5"
    )
    sas_cell = view.table.item(row, header.index("sasrec"))
    cafe_cell = view.table.item(row, header.index("cafe"))
    assert sas_cell.text() == f"{sasrec['NDCG@5']:.4f}"
    cafe_mean = np.mean([c["NDCG@5"] for c in cafe])
    assert cafe_cell.text().startswith(f"{cafe_mean:.4f} ± ")
    best_is_cafe = cafe_mean > sasrec["NDCG@5"]
    assert cafe_cell.font().bold() == best_is_cafe
    assert sas_cell.font().bold() != best_is_cafe
    assert not view.warning.isVisible()

    # every run has a validation curve with one point per epoch
    for curve in view.curves.getPlotItem().listDataItems():
        assert len(curve.getData()[0]) == 2


def test_a_compare_asked_for_while_runs_are_read_is_the_one_shown(
    qtbot, store_runs, no_dialogs
):
    store, ids = store_runs
    view = CompareView(StoreSource(store))
    qtbot.addWidget(view)
    view.compare([ids["cafe0"], ids["sasrec"]])
    view.compare([ids["cafe0"], ids["cafe1"], ids["sasrec"]])  # while reading
    qtbot.waitUntil(
        lambda: view.comparison is not None and len(view.comparison.runs) == 3,
        timeout=WAIT_MS,
    )
    assert view.task is None and view.waiting is None


def test_ablation_table_puts_cafe_runs_in_rows_by_their_switches(
    qtbot, store_runs, ciao_small, no_dialogs
):
    store, ids = store_runs
    spec = DataSpec(path=str(ciao_small))
    variant = add_run(
        store, spec, load_dataset(spec), "cafe", 0, local_heads=0,
        joint_inference=False,
    )  # fmt: skip
    view = CompareView(StoreSource(store))
    qtbot.addWidget(view)

    # one CaFe configuration alone makes no ablation
    with qtbot.waitSignal(view.compared, timeout=WAIT_MS):
        view.compare([ids["cafe0"]])
    ablation_item = view.table_box.model().item(view.table_box.findData("ablation"))
    assert not ablation_item.isEnabled()

    with qtbot.waitSignal(view.compared, timeout=WAIT_MS):
        view.compare([ids["cafe0"], ids["cafe1"], ids["sasrec"], variant])
    assert ablation_item.isEnabled()
    view.table_box.setCurrentIndex(view.table_box.findData("ablation"))
    grid = view.grid

    # SASRec, the paper's backbone, then the steps in the paper's order
    assert list(grid.mean.index) == ["sasrec", "+(1)(2)", "+(1)(2)(3)(4)"]
    full = [stored_test(store, ids[k])["NDCG@5"] for k in ("cafe0", "cafe1")]
    cell = ("sampled", "NDCG@5")
    assert grid.mean.loc["+(1)(2)(3)(4)", cell] == pytest.approx(np.mean(full))
    assert grid.count.loc["+(1)(2)(3)(4)", cell] == 2
    assert grid.mean.loc["+(1)(2)", cell] == pytest.approx(
        stored_test(store, variant)["NDCG@5"]
    )
    base = stored_test(store, ids["sasrec"])["NDCG@5"]
    change = grid.extra.loc["+(1)(2)", "sampled NDCG@5 vs sasrec %"]
    assert change == pytest.approx(
        (stored_test(store, variant)["NDCG@5"] / base - 1) * 100
    )

    # the widget, the bars and the breakdowns follow the steps
    assert view.table.rowCount() == 3
    assert view.table.item(0, 0).text() == "sasrec"
    assert len(view.bars.getPlotItem().items) >= 3
    assert set(view.breakdowns["frequency"]) == set(grid.mean.index)
    assert len(view.curves.getPlotItem().listDataItems()) == 4

    # back to Table 2: CaFe's two configurations are two columns
    view.table_box.setCurrentIndex(view.table_box.findData("models"))
    assert sum(label.startswith("cafe") for label in view.grid.column_names()) == 2
    store.transact(lambda session: q.delete_run(session, variant))


def test_breakdowns_average_back_to_the_overall_mean(qtbot, store_runs, no_dialogs):
    store, ids = store_runs
    view = CompareView(StoreSource(store))
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.compared, timeout=WAIT_MS):
        view.compare([ids["sasrec"], ids["cafe0"]])
    for name in ("frequency", "length"):
        for label, run_id in (("sasrec", ids["sasrec"]), ("cafe", ids["cafe0"])):
            table = view.breakdowns[name][label]
            filled = table[table["users"] > 0]
            weighted = (filled["mean"] * filled["users"]).sum() / filled["users"].sum()
            assert weighted == pytest.approx(stored_test(store, run_id)["NDCG@5"])
            with store.session() as session:
                assert table["users"].sum() == len(q.user_results(session, run_id))


def test_compare_warns_about_other_data_and_protocols(
    qtbot, store_runs, ml_small, no_dialogs
):
    store, ids = store_runs
    spec = DataSpec(path=str(ml_small))
    other = add_run(store, spec, load_dataset(spec), "pop", 0)
    view = CompareView(StoreSource(store))
    qtbot.addWidget(view)
    view.show()
    with qtbot.waitSignal(view.compared, timeout=WAIT_MS):
        view.compare([ids["sasrec"], other])
    assert view.warning.isVisible()
    assert "different dataset versions" in view.warning.text()
    assert f"#{other}" in view.warning.text()


def test_inspect_top_k_is_the_engines_own_scoring(qtbot, store_runs, no_dialogs):
    store, ids = store_runs
    source = StoreSource(store)
    view = InspectView(source)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.runLoaded, timeout=WAIT_MS):
        view.select_run(ids["cafe0"])
    view.k_spin.setValue(8)

    # the worst-served user from the browser
    view.order_box.setCurrentText("Worst served first")
    user = int(view.users["user"].iloc[0])
    with qtbot.waitSignal(view.inspected, timeout=WAIT_MS) as caught:
        view.inspect(user)
    shown = caught.args[0]

    # the engine's scoring of the same user from the same checkpoint
    with store.session() as session:
        spec = q.get_run(session, ids["cafe0"]).spec
        checkpoint = q.checkpoint_path(session, ids["cafe0"], "best")
        per_user = q.user_results(session, ids["cafe0"]).set_index("user")
    run = load_trained(spec, checkpoint)
    users, seqs, _ = eval_inputs(run.split, "test", 20, np.array([user]))
    with torch.no_grad():
        scores = run.model.score_all(EvalBatch(torch.from_numpy(users), seqs))[0]
    scores[torch.from_numpy(run.dataset.sequence(user)[:-1])] = float("-inf")
    expected = torch.topk(scores, 8).indices.numpy()
    assert shown.top["item"].tolist() == expected.tolist()
    assert shown.rank == per_user.loc[user, "rank"]
    assert shown.rank == view.users["rank"].iloc[0] - 1

    # the table shows the same items, the timeline the history and the held-out item
    column = [view.top_model.headerData(j, Qt.Orientation.Horizontal) for j in range(8)]
    ids_shown = [
        view.top_model.data(view.top_model.index(r, column.index("item")))
        for r in range(view.top_model.rowCount())
    ]
    assert ids_shown == list(run.dataset.item_ids[expected].astype(str))
    assert len(view.timeline.describe) == len(shown.history) + 1
    assert view.attention.maps
    assert view.intents.getPlotItem().items  # the next-intent bars

    # a user typed by id
    view.user_edit.setText(str(run.dataset.user_ids[int(run.split.eval_users[0])]))
    with qtbot.waitSignal(view.inspected, timeout=WAIT_MS) as caught:
        view.show_button.click()
    assert caught.args[0].user == int(run.split.eval_users[0])


def test_inspect_drops_a_user_scored_for_the_run_shown_before(
    qtbot, store_runs, no_dialogs
):
    store, ids = store_runs
    view = InspectView(StoreSource(store))
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.runLoaded, timeout=WAIT_MS):
        view.select_run(ids["cafe0"])
    cafe_run = view.run
    user = int(view.users["user"].iloc[0])

    # another run is chosen while CaFe still scores the user: whichever of the two
    # tasks ends first, CaFe's top-K must not appear under SASRec's name
    view.inspect(user)
    with qtbot.waitSignal(view.runLoaded, timeout=WAIT_MS):
        view.select_run(ids["sasrec"])
    qtbot.waitUntil(lambda: view.score_task is None, timeout=WAIT_MS)
    assert view.run is not cafe_run and view.run_id == ids["sasrec"]
    assert view.current is None

    # the next user is scored by SASRec, which predicts no intents
    with qtbot.waitSignal(view.inspected, timeout=WAIT_MS) as caught:
        view.inspect(user)
    assert caught.args[0].intent_distribution is None
    assert view.current is caught.args[0]
    # the intent probability's header says which probability it is
    header = list(view.top_model.header_tips)
    assert (
        "P(intent)" in header and "softmax" in view.top_model.header_tips["P(intent)"]
    )


def test_embedding_projection_completes_and_cancels(
    qtbot, store_runs, no_dialogs, monkeypatch, tmp_path
):
    store, ids = store_runs
    view = EmbeddingView(StoreSource(store))
    qtbot.addWidget(view)
    view.show_run(ids["sasrec"])
    view.method_box.setCurrentIndex(view.method_box.findData("pca"))
    with qtbot.waitSignal(view.computed, timeout=WAIT_MS):
        view.compute()
    num_items = len(view.data[ids["sasrec"]].labels) - 1
    assert view.projections[(ids["sasrec"], ("pca", 0))].shape == (num_items, 2)
    assert view.count_label.text() == f"{num_items} of {num_items} items shown"
    view.filter_box.setCurrentIndex(view.filter_box.findData("infrequent"))
    assert 0 < len(view.visible_items()) < num_items

    # the view's own export: the (V, D) array and a label row per item with the
    # projected x, y beside it
    with monkeypatch.context() as patched:
        patched.setattr(exports, "ask_path", lambda *_a: tmp_path / "items.npy")
        view._export_embeddings()
    array = np.load(tmp_path / "items.npy")
    labels = pd.read_csv(tmp_path / "items.csv")
    assert array.shape[0] == num_items == len(labels)
    np.testing.assert_allclose(
        labels[["x", "y"]].to_numpy(),
        view.projections[(ids["sasrec"], ("pca", 0))],
        rtol=1e-5,
    )

    # kept in the run's folder: a view of the next session shows it without
    # projecting again
    kept = store.run_dir(ids["sasrec"]) / "projections" / "pca_0.npz"
    assert kept.is_file()
    again = EmbeddingView(StoreSource(store))
    qtbot.addWidget(again)

    def never(*_args, **_kwargs):
        raise AssertionError("projected again")

    with monkeypatch.context() as patched:
        patched.setattr(embedding_view, "project", never)
        again.show_run(ids["sasrec"])
        again.method_box.setCurrentIndex(again.method_box.findData("pca"))
        with qtbot.waitSignal(again.computed, timeout=WAIT_MS):
            again.compute()
    np.testing.assert_array_equal(
        again.projections[(ids["sasrec"], ("pca", 0))],
        view.projections[(ids["sasrec"], ("pca", 0))],
    )

    # another run, not projected yet: the plot empties rather than keep the first
    # run's points under the new run's name; back to the first, its cached points
    view.show_run(ids["cafe0"])
    assert view.shown is None
    assert view.plot.getPlotItem().listDataItems() == []
    assert "Not projected" in view.plot.getPlotItem().titleLabel.text
    view.show_run(ids["sasrec"])
    assert view.shown == (ids["sasrec"], ("pca", 0))
    assert f"#{ids['sasrec']} " in view.plot.getPlotItem().titleLabel.text

    # t-SNE of many iterations, cancelled at once: no result is kept
    view.method_box.setCurrentIndex(view.method_box.findData("tsne"))
    view.iterations.setValue(5000)
    view.compute()
    task = view.task
    with qtbot.waitSignal(task.cancelled, timeout=WAIT_MS):
        view.cancel()
    assert view.task is None
    assert not any(key[1][0] == "tsne" for key in view.projections)
    assert view.progress.format() == "cancelled"


def test_every_export_writes_a_file_that_parses(
    qtbot, store_runs, tmp_path, no_dialogs
):
    store, ids = store_runs
    source = StoreSource(store)
    compare = CompareView(source)
    qtbot.addWidget(compare)
    compare.resize(1000, 700)
    compare.show()
    with qtbot.waitSignal(compare.compared, timeout=WAIT_MS):
        compare.compare([ids["cafe0"], ids["cafe1"], ids["sasrec"]])

    # plots
    png = exports.export_plot(compare.curves, tmp_path / "curves.png")
    assert not QImage(str(png)).isNull() and QImage(str(png)).width() >= 1200
    svg = exports.export_plot(compare.bars, tmp_path / "bars.svg")
    assert ElementTree.parse(svg).getroot().tag.endswith("svg")

    # the comparison table in three formats
    compare.write_table(tmp_path / "table.csv")
    numbers = pd.read_csv(tmp_path / "table.csv")
    assert list(numbers["metric"][:3]) == ["NDCG@5", "HR@5", "NDCG@10"]
    compare.write_table(tmp_path / "table.tex")
    latex = (tmp_path / "table.tex").read_text()
    assert "\\begin{tabular}" in latex and "\\end{tabular}" in latex
    assert latex.count("\\textbf{") >= len(numbers)
    compare.write_table(tmp_path / "table.md")
    rows = [r for r in (tmp_path / "table.md").read_text().splitlines() if r[:1] == "|"]
    assert len(rows) == 2 + len(numbers)
    exports.export_table(compare.breakdown_frame("frequency"), tmp_path / "freq.csv")
    assert set(pd.read_csv(tmp_path / "freq.csv")["configuration"]) == {
        "cafe",
        "sasrec",
    }

    # a run's per-user results
    results = source.user_results(ids["cafe0"])
    for name in ("users.csv", "users.parquet"):
        path = exports.export_user_results(results, tmp_path / name)
        reader = pd.read_csv if name.endswith(".csv") else pd.read_parquet
        pd.testing.assert_frame_equal(reader(path), results, check_dtype=False)

    # item embeddings with their labels
    run = source.trained(ids["cafe0"])
    weights = run.model.item_embeddings().numpy()[1:]
    labels = pd.DataFrame({"item_id": run.dataset.item_ids[1:].astype(str)})
    npy, csv = exports.export_embeddings(weights, labels, tmp_path / "emb.npy")
    assert np.array_equal(np.load(npy), weights)
    assert len(pd.read_csv(csv)) == len(weights)

    # a wrong extension is refused with a message naming the file
    with pytest.raises(exports.ExportError, match="plot.bmp"):
        exports.export_plot(compare.curves, tmp_path / "plot.bmp")


def test_compare_store_resumes_and_agrees_with_the_compare_view(
    qtbot, ciao_small, tmp_path, monkeypatch, no_dialogs
):
    """``compare --store`` records its runs; one stopped mid-epoch is resumed by the
    next compare; the stored runs give the workbench the command's own Table 2."""
    from app.cli import main
    from app.worker import Recorder, StopFlag

    db = tmp_path / "runs.db"
    argv = [
        "--db", str(db), "compare", "--data", str(ciao_small), "--models", "cafe",
        "--seeds", "1", "--epochs", "3", "--min-epochs", "0", "--hidden", "16",
        "--device", "cpu", "--quiet", "--store",
    ]  # fmt: skip
    plain = main([*argv[2:-1], "--out", str(tmp_path / "plain")])
    assert plain == 0

    # a stop request in the second epoch (as Ctrl-C would make) cancels the run:
    # once the first epoch is validated and recorded, the second poll (before the
    # second batch) says stop
    polls = {"validated": False, "after": 0}
    record_validation = Recorder._validated

    def validated(recorder, event) -> None:
        record_validation(recorder, event)
        polls["validated"] = True

    def stop_later(_flag) -> bool:
        if polls["validated"]:
            polls["after"] += 1
        return polls["after"] > 1

    with monkeypatch.context() as patch:
        patch.setattr(Recorder, "_validated", validated)
        patch.setattr(StopFlag, "__call__", stop_later)
        assert main([*argv, "--out", str(tmp_path / "stored")]) == 130
    store = open_store(str(db))
    with store.session() as session:
        (cafe,) = [r for r in q.list_runs(session) if r.model == "cafe"]
    assert cafe.status == "cancelled" and cafe.epochs == 1

    # the next compare resumes that run and reaches the uninterrupted numbers
    assert main([*argv, "--out", str(tmp_path / "stored")]) == 0
    with store.session() as session:
        runs = q.list_runs(session)
    assert sorted(r.model for r in runs) == ["cafe", "intentpop"]
    assert all(r.status == "finished" for r in runs)
    assert {r.id for r in runs if r.model == "cafe"} == {cafe.id}
    table = pd.read_csv(tmp_path / "stored" / "table2.csv")
    assert table.equals(pd.read_csv(tmp_path / "plain" / "table2.csv"))
    listed = pd.read_csv(tmp_path / "stored" / "runs.csv")
    assert sorted(listed["run"].unique()) == sorted(r.id for r in runs)

    # the compare view of the stored runs shows the command's numbers
    view = CompareView(StoreSource(store))
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.compared, timeout=WAIT_MS):
        view.compare([r.id for r in runs])
    for _, row in table.iterrows():
        for model in ("cafe", "intentpop"):
            shown = view.grid.mean.loc[("sampled", row["metric"])].xs(model, level=1)
            assert float(shown.iloc[0]) == pytest.approx(row[f"{model} mean"])
    store.dispose()


def test_a_run_whose_data_changed_is_not_inspected(tmp_path, ciao_small):
    import shutil

    from storage import StoreError

    data = shutil.copytree(ciao_small, tmp_path / "data")
    store = open_store(str(tmp_path / "runs.db"))
    spec = DataSpec(path=str(data))
    run_id = add_run(store, spec, load_dataset(spec), "sasrec", 0)
    assert StoreSource(store).trained(run_id).spec.model == "sasrec"

    # one more interaction: other item ids, so the weights would score wrong items
    inter = pd.read_csv(data / "interactions.csv")
    pd.concat(
        [inter, inter.tail(1).assign(timestamp=inter["timestamp"].max() + 1)]
    ).to_csv(data / "interactions.csv", index=False)
    with pytest.raises(StoreError, match="data changed since run"):
        StoreSource(store).trained(run_id)
    store.dispose()


def test_exports_are_kept_as_artifacts_of_their_runs(
    qtbot, store_runs, tmp_path, monkeypatch, no_dialogs
):
    from engine.checkpoint import file_sha256

    store, ids = store_runs
    compared = [ids["cafe0"], ids["sasrec"]]
    view = CompareView(StoreSource(store))
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.compared, timeout=WAIT_MS):
        view.compare(compared)
    target = tmp_path / "exported" / "table.md"
    monkeypatch.setattr(exports, "ask_path", lambda *_: target)
    view._export_table(".md")

    assert target.exists()
    for run_id in compared:
        with store.session() as session:
            kept = {a.kind: a for a in q.artifacts(session, run_id)}
            row = kept["export:comparison-table"]
            assert row.path == str(target.resolve())
            assert row.size == target.stat().st_size
            assert row.sha256 == file_sha256(target)
            # the workbench never opens an export through the store
            with pytest.raises(q.UnsafePathError):
                q.checked_path(session, row)
    with store.session() as session:
        assert "export:comparison-table" not in {
            a.kind for a in q.artifacts(session, ids["cafe1"])
        }


def test_save_dialogs_open_where_the_last_export_went(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from app.gui.settings import Settings

    settings = Settings(
        QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    )
    monkeypatch.setattr(exports, "settings", settings)
    asked = []
    (tmp_path / "figures").mkdir()
    answer = str(tmp_path / "figures" / "curves")

    def dialog(_parent, _title, start, _filters):
        asked.append(start)
        return answer, "PNG image (*.png)"

    monkeypatch.setattr(exports.QFileDialog, "getSaveFileName", dialog)
    assert exports.ask_path(None, "Export", exports.PLOT_FILTER, "a.png") == (
        tmp_path / "figures" / "curves.png"
    )
    exports.ask_path(None, "Export", exports.TABLE_FILTER, "b.csv")
    assert asked[1] == str(tmp_path / "figures" / "b.csv")
