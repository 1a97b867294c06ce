"""The comparison tables (engine.reporting) and the ``compare`` command end to end."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from app import compare_command
from app.cli import build_parser, main
from engine import reporting
from engine.errors import ConfigError


def make_runs(values: dict[str, list[float]], protocol: str = "sampled"):
    """One run per (model, seed) with NDCG@5 = the given value, HR@5 twice it."""
    return pd.DataFrame(
        [
            {
                "label": model,
                "model": model,
                "protocol": protocol,
                "seed": seed,
                "NDCG@5": value,
                "HR@5": 2 * value,
            }
            for model, seeds in values.items()
            for seed, value in enumerate(seeds, start=1)
        ]
    )


# ---- reporting on hand-made numbers
# -----------------------------------------------------------


def test_cells_are_mean_and_sample_std_over_seeds():
    runs = make_runs({"sasrec": [0.1, 0.3], "cafe": [0.4]})
    grid = reporting.comparison_table(runs, metrics=["NDCG@5"])

    cell = grid.mean.loc[("sampled", "NDCG@5")]
    assert cell[("item-only", "sasrec")] == pytest.approx(0.2)
    # sample std of 0.1 and 0.3 is sqrt(0.02) = 0.1414
    assert grid.std.loc[("sampled", "NDCG@5"), ("item-only", "sasrec")] == (
        pytest.approx(math.sqrt(0.02))
    )
    text = grid.cell_text().loc[("sampled", "NDCG@5")]
    assert text[("item-only", "sasrec")] == "0.2000 ± 0.1414"
    # one seed has no spread to show
    assert text[("CaFe", "cafe")] == "0.4000"


def test_columns_follow_the_papers_groups():
    runs = make_runs({"cafe": [0.3], "intentpop": [0.2], "pop": [0.1], "sasrec": [0]})
    grid = reporting.comparison_table(runs)
    assert list(grid.mean.columns) == [
        ("item-only", "pop"),
        ("item-only", "sasrec"),
        ("intent-aware", "intentpop"),
        ("CaFe", "cafe"),
    ]
    # metrics absent from the runs (MRR here) are left out, not shown empty
    assert list(grid.mean.index) == [("sampled", "NDCG@5"), ("sampled", "HR@5")]


def test_best_of_each_row_is_bold_ties_too_zero_never():
    runs = make_runs({"pop": [0.25], "intentpop": [0.25], "cafe": [0.2]})
    runs = pd.concat([runs, make_runs({"pop": [0.0], "cafe": [0.0]}, "full")])
    grid = reporting.comparison_table(runs, metrics=["NDCG@5"])
    markdown = reporting.to_markdown(grid)

    sampled = next(line for line in markdown.splitlines() if "| sampled |" in line)
    assert sampled.count("**0.2500**") == 2
    assert "**0.2000**" not in sampled
    full = next(line for line in markdown.splitlines() if "| full |" in line)
    assert "**" not in full


def test_improvement_is_over_the_best_baseline_of_each_row():
    runs = make_runs({"pop": [0.1], "sasrec": [0.25], "intentpop": [0.2]})
    runs = pd.concat([runs, make_runs({"cafe": [0.3]})])
    runs.loc[(runs["label"] == "intentpop"), "HR@5"] = 0.8  # best baseline of HR@5

    extra = reporting.comparison_table(runs).extra
    assert extra.loc[("sampled", "NDCG@5"), reporting.BEST_BASELINE] == "sasrec"
    assert extra.loc[("sampled", "NDCG@5"), reporting.IMPROVEMENT] == (
        pytest.approx(20.0)
    )
    assert extra.loc[("sampled", "HR@5"), reporting.BEST_BASELINE] == "intentpop"
    assert extra.loc[("sampled", "HR@5"), reporting.IMPROVEMENT] == pytest.approx(-25.0)
    assert reporting.format_extra(reporting.IMPROVEMENT, -25.0) == "-25.0%"


def test_paired_test_against_hand_worked_values():
    baseline = np.array([0.1, 0.2, 0.0, 0.5, 0.3, 0.0])
    cafe = baseline + np.array([1, 2, 3, 4, 5, 6]) * 0.01
    test = reporting.paired_test(cafe, baseline)

    # six differences, all positive: the exact two-sided Wilcoxon p is 2 / 2^6
    assert test.wilcoxon_pvalue == pytest.approx(2 / 64)
    # differences 0.01..0.06: t = mean / (sd / sqrt(n)) = sqrt(21) with 5 degrees
    assert test.t_pvalue == pytest.approx(2 * stats.t.sf(math.sqrt(21), df=5))
    assert test.mean_diff == pytest.approx(0.035)
    assert test.pairs == 6

    same = reporting.paired_test(baseline, baseline)
    assert (same.t_pvalue, same.wilcoxon_pvalue) == (1.0, 1.0)
    assert reporting.paired_test(baseline + 0.1, baseline).t_pvalue == 0.0
    assert math.isnan(reporting.paired_test([0.5], [0.1]).t_pvalue)


def test_per_user_results_are_averaged_over_seeds_then_paired_by_user():
    rows = []
    for seed in (1, 2):
        for user in range(4):
            rows.append(("cafe", seed, user, 0.1 * user + seed))
            if user != 3:  # the baseline misses one user in every seed
                rows.append(("pop", seed, user, 0.1 * user))
    per_user = pd.DataFrame(rows, columns=["label", "seed", "user", "NDCG@5"])
    per_user["protocol"] = "sampled"
    per_user = per_user.sample(frac=1.0, random_state=0)  # row order must not matter

    a, b = reporting.matched_pairs(per_user, "cafe", "pop", "NDCG@5")
    # one pair per user: cafe's mean over seeds 1 and 2 is 0.1 u + 1.5
    assert a.tolist() == pytest.approx([1.5, 1.6, 1.7])
    assert b.tolist() == pytest.approx([0.0, 0.1, 0.2])

    table = reporting.significance_table(per_user)
    assert table[["baseline", reporting.PAIRS]].values.tolist() == [["pop", 3]]
    assert table[reporting.SEEDS].tolist() == ["1, 2"]
    # per-user results of seed 2 lost for the baseline: the test covers seed 1 only
    table = reporting.significance_table(
        per_user[(per_user.label == "cafe") | (per_user.seed == 1)]
    )
    assert table[reporting.SEEDS].tolist() == ["1"]


def test_significance_counts_each_user_once_whatever_the_seeds():
    # hand-worked: per-seed differences of users 0..3 over two seeds
    diffs = {1: [0.1, 0.0, 0.3, 0.2], 2: [0.3, 0.2, 0.1, -0.2]}
    rows = []
    for seed, values in diffs.items():
        for user, diff in enumerate(values):
            rows += [("pop", seed, user, 0.5), ("cafe", seed, user, 0.5 + diff)]
    # a user the baseline has in seed 1 only is averaged over seed 1 only
    rows += [("cafe", 1, 4, 0.9), ("pop", 1, 4, 0.5), ("cafe", 2, 4, 0.0)]
    per_user = pd.DataFrame(rows, columns=["label", "seed", "user", "NDCG@5"])
    per_user["protocol"] = "sampled"

    a, b = reporting.matched_pairs(per_user, "cafe", "pop", "NDCG@5")
    # user means of the differences: 0.2, 0.1, 0.2, 0.0, and 0.4 (seed 1 alone)
    assert (a - b).tolist() == pytest.approx([0.2, 0.1, 0.2, 0.0, 0.4])
    row = reporting.significance_table(per_user).iloc[0]
    assert row[reporting.PAIRS] == 5
    assert row["mean diff"] == pytest.approx(0.18)
    expected = stats.ttest_1samp([0.2, 0.1, 0.2, 0.0, 0.4], 0.0).pvalue
    assert row[reporting.P_TTEST] == pytest.approx(expected)
    # pooling the nine (seed, user) rows would claim more evidence than five users
    pooled = stats.ttest_1samp([*diffs[1], *diffs[2], 0.4], 0.0).pvalue
    assert row[reporting.P_TTEST] != pytest.approx(pooled)

    grid = reporting.comparison_table(
        make_runs({"pop": [0.5, 0.5], "cafe": [0.6, 0.6]}), per_user
    )
    assert grid.extra.loc[("sampled", "NDCG@5"), reporting.PAIRS] == 5
    assert "each user's value averaged over the seeds" in grid.notes[0]
    assert "(seed, user)" not in grid.notes[0]


def test_ablation_marks_the_best_of_each_column_and_changes_over_the_backbone():
    runs = make_runs({"backbone": [0.2], "+(1)": [0.1], "+(1)(2)(3)(4)": [0.3]})
    runs["model"] = "cafe"
    grid = reporting.ablation_table(runs, reporting.ablation_order(runs["label"]))

    assert list(grid.mean.index) == ["backbone", "+(1)", "+(1)(2)(3)(4)"]
    assert grid.best[("sampled", "NDCG@5")].tolist() == [False, False, True]
    change = grid.extra["sampled NDCG@5 vs backbone %"]
    assert change.tolist() == pytest.approx([0.0, -50.0, 50.0])


def test_ablation_steps_are_named_and_ordered_as_in_the_paper():
    # the command's ladder, with (3) on as three local heads, gives Table 3's rows
    steps = [
        reporting.ablation_step(
            {k: (3 if v is None else v) for k, v in switches.items()}
        )
        for switches in compare_command.ABLATION_LADDER
    ]
    paper = ["backbone", "+(1)", "+(1)(2)", "+(1)(2)(3)", "+(1)(2)(4)", "+(1)(2)(3)(4)"]
    assert steps == paper
    assert reporting.ablation_order([*reversed(paper), "sasrec"]) == ["sasrec", *paper]
    # any combination is a step of its own, after the ones with fewer switches
    assert reporting.ablation_step({"local_heads": 1, "joint_inference": True}) == (
        "+(3)(4)"
    )
    assert reporting.ablation_order(["+(1)(2)", "+(3)(4)", "+(4)"]) == [
        "+(4)",
        "+(1)(2)",
        "+(3)(4)",
    ]


def test_sweep_reports_improvement_at_each_k():
    runs = pd.concat(
        [
            make_runs({"cafe": [0.3], "bert4rec": [0.2]}).assign(k=1),
            make_runs({"cafe": [0.2], "bert4rec": [0.2]}).assign(k=5),
        ]
    )
    grid = reporting.sweep_table(runs, None, "cafe", "bert4rec")
    improvement = grid.extra["NDCG@5 improv. %"]
    assert improvement.tolist() == pytest.approx([50.0, 0.0])
    assert list(grid.mean.index) == [("sampled", 1), ("sampled", 5)]


def test_latex_escapes_and_bolds():
    runs = make_runs({"pop": [0.1], "cafe": [0.3]})
    latex = reporting.to_latex(reporting.comparison_table(runs))
    assert r"\begin{tabular}" in latex and r"\end{tabular}" in latex
    assert r"\textbf{0.3000}" in latex
    assert r"improv. \%" in latex
    assert reporting.latex_escape("a_b & <c>") == r"a\_b \& \textless{}c\textgreater{}"


# ---- the command's plan, without training
# --------------------------------------------------------------------


def parse(*flags: str):
    return build_parser().parse_args(["compare", "--data", "somewhere", *flags])


def test_plan_holds_the_table3_ladder_and_the_sweep():
    args = parse(
        "--models", "sasrec,cafe", "--seeds", "1,2", "--ablation",
        "--min-item-freq", "1,5", "--local-heads", "2", "--hidden", "18",
    )  # fmt: skip
    models = compare_command.chosen_models(["sasrec", "cafe"])
    jobs, reference = compare_command.plan(args, models)

    assert reference == "bert4rec"
    table2 = [j for j in jobs if j.table == "table2"]
    assert [j.label for j in table2 if j.seed == 1] == ["sasrec", "intentpop", "cafe"]
    ladder = {j.label: dict(j.model_config) for j in jobs if j.table == "ablation"}
    assert ladder["backbone"] == {
        "fuse_intent": False,
        "intent_loss": False,
        "local_heads": 0,
        "joint_inference": False,
        "hidden": 18,
    }
    assert ladder["+(1)(2)(3)"]["local_heads"] == 2
    assert ladder["+(1)(2)(4)"]["joint_inference"] is True
    assert ladder["+(1)(2)(3)(4)"]["local_heads"] == 2
    sweep = {(j.label, j.k) for j in jobs if j.table == "sweep"}
    assert sweep == {(m, k) for m in ("cafe", "bert4rec") for k in (1, 5)}
    assert len(jobs) == 2 * (3 + 6 + 4)


def test_both_protocols_choose_on_sampled_and_report_full_too():
    train = compare_command.train_settings(parse("--protocol", "both"))
    assert (train["protocol"], train["also_evaluate"]) == ("sampled", "full")


def test_flags_that_fit_no_chosen_model_and_unknown_models_are_errors():
    with pytest.raises(ConfigError, match="--hidden"):
        compare_command.plan(parse("--hidden", "8"), ["pop", "intentpop"])
    with pytest.raises(ConfigError, match="no-such-model"):
        compare_command.chosen_models(["no-such-model"])


def test_plan_refuses_heads_that_do_not_split_the_hidden_size():
    # 16 splits over sasrec's one head, not over cafe's 1 + 2
    args = parse("--models", "sasrec,cafe", "--local-heads", "2", "--hidden", "16")
    with pytest.raises(ConfigError, match=r"--hidden 16 .* \(--heads 1 \+ "
                       r"--local-heads 2\) of cafe"):  # fmt: skip
        compare_command.plan(args, ["sasrec", "cafe"])


# ---- end to end on real data
# ------------------------------------------------------------------


def test_compare_writes_three_formats_and_resumes(ciao_small, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "compare", "--data", str(ciao_small), "--models", "pop,cafe", "--seeds", "1",
        "--epochs", "2", "--hidden", "16", "--device", "cpu", "--quiet",
        "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr()
    # pop and intentpop (added as the sanity baseline) only count, cafe trains
    assert first.err.count("evaluated in") == 2 and first.err.count("trained in") == 1

    # CSV: one row per metric, mean/std/seeds per model, improvement and p-values
    table = pd.read_csv(out / "table2.csv")
    assert table["metric"].tolist() == ["NDCG@5", "HR@5", "MRR"]
    for model in ("pop", "intentpop", "cafe"):
        assert table[f"{model} mean"].between(0, 1).all()
        assert (table[f"{model} seeds"] == 1).all()
    assert table[reporting.P_WILCOXON].between(0, 1).all()
    assert (table[reporting.PAIRS] > 0).all()

    # Markdown: header, separator and one row per metric, the best in bold
    lines = (out / "table2.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("|")]
    assert len(rows) == 2 + 3
    assert all(row.count("|") == rows[0].count("|") for row in rows)
    assert all("**" in row for row in rows[2:])

    # LaTeX: a tabular with the best cell in bold
    latex = (out / "table2.tex").read_text()
    assert r"\begin{tabular}" in latex and r"\textbf{" in latex
    significance = pd.read_csv(out / "significance.csv")
    assert sorted(significance["baseline"]) == ["intentpop", "pop"]

    # a rerun trains nothing and leaves the saved runs untouched
    saved = sorted((out / "runs").iterdir())
    assert len(saved) == 6 and not any(p.suffix == ".ckpt" for p in saved)
    stamps = {p: p.stat().st_mtime_ns for p in saved}
    assert main(argv) == 0
    second = capsys.readouterr()
    assert second.err.count("done before") == 3
    assert "trained in" not in second.err and "evaluated in" not in second.err
    assert {p: p.stat().st_mtime_ns for p in saved} == stamps
    assert pd.read_csv(out / "table2.csv").equals(table)

    # a changed hyperparameter retrains only the model it applies to
    assert main([*argv, "--hidden", "8"]) == 0
    third = capsys.readouterr().err.splitlines()
    status = {line.split()[1]: line for line in third if line.startswith("[")}
    assert "done before" in status["pop"] and "done before" in status["intentpop"]
    assert "trained in" in status["cafe"]
    assert len(list((out / "runs").glob("cafe__*.json"))) == 2

    # a run is the same run whatever other seeds the command was given: seed 1 of
    # --seeds 2,1 is the one --seeds 1 trained (ties in file order use no seed)
    reordered = [*argv[:6], "2,1", *argv[7:]]
    assert main(reordered) == 0
    fourth = capsys.readouterr().err.splitlines()
    seed1 = [line for line in fourth if "cafe seed 1" in line]
    assert seed1 and "done before" in seed1[0]


def one_category_data(folder):
    """Six users of six items, every item in the same category."""
    folder.mkdir()
    rows = "".join(f"u{u},i{(u + i) % 6},{i}\n" for u in range(6) for i in range(5))
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp\n" + rows)
    items = "".join(f"i{i},books\n" for i in range(6))
    (folder / "items.csv").write_text("item_id,category\n" + items)
    return folder


def test_data_with_one_intent_leaves_out_intent_models_not_named(tmp_path, capsys):
    data = one_category_data(tmp_path / "one")
    argv = [
        "compare", "--data", str(data), "--seeds", "1", "--epochs", "1",
        "--hidden", "8", "--max-len", "10", "--threads", "1", "--quiet",
    ]  # fmt: skip

    # intentpop, added by default, is left out with one note; the rest runs
    out = tmp_path / "out"
    assert main([*argv, "--models", "pop,sasrec", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("left out") == 1
    assert (
        f"note: {data / 'items.csv'}: the intent column 'category' has fewer than two "
        "distinct values, so the models that read intents are left out: intentpop."
    ) in err
    assert sorted(pd.read_csv(out / "runs.csv")["model"]) == ["pop", "sasrec"]

    # a named intent-reading model is an error before anything trains
    out = tmp_path / "named"
    assert main([*argv, "--models", "pop,cafe", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the intent column 'category' has one value only" in err
    assert "cafe reads intents" in err and "[1/" not in err
    assert not (out / "runs").exists()

    # so is the ablation, which needs CaFe
    assert main([*argv, "--models", "pop", "--ablation", "--out", str(out)]) == 2
    assert "cafe reads intents" in capsys.readouterr().err


def test_default_models_on_data_without_intents_are_the_item_only_ones(capsys):
    dataset = SimpleNamespace(
        num_known_intents=0, intent_origin=lambda: ("log.csv", None)
    )
    models = compare_command.chosen_models(None, dataset)
    assert models == ["pop", "sasrec", "bert4rec", "ssept", "locker"]
    assert capsys.readouterr().err == (
        "note: log.csv: no intent column is chosen, so the models that read intents "
        "are left out: intentpop, nova, fdsa, bertf, lockerf, cafe.\n"
    )
