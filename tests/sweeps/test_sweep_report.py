"""`t2t sweep report`: mean ± std, 2σ bolding, which way is better, the paper's rows, the
written files."""

import csv
import doctest
import random
import re
import statistics
from pathlib import Path

import pytest

from t2t.configuration import REPO_GIN_DIR, resolve_gin_file
from t2t.sweeps import cli, paper
from t2t.sweeps.paper import COLUMNS, PAPER_ROWS, find_row
from t2t.sweeps.report import (Cell, TrialInfo, bold_cells, build_report, cell_text,
                               metric_direction, paper_agreement, to_markdown)
from t2t.sweeps.spec import Sweep, Trial
from t2t.sweeps.store import ResultsStore
from t2t.sweeps.sweep_file import load_sweep

ROOT = Path(__file__).resolve().parents[2]
SWEEP_FILES = {"t5_table2": ROOT / "experiments" / "t5_table2" / "sweep.py",
               "t5_objectives": ROOT / "experiments" / "t5_objectives" / "sweep.py"}


def test_cell_is_mean_and_sample_std():
    values = [random.Random(0).gauss(5, 1) for _ in range(7)]
    cell = Cell.of(values)
    assert cell.mean == pytest.approx(statistics.mean(values))
    assert cell.std == pytest.approx(statistics.stdev(values))
    assert cell.n == 7 and Cell.of([2.0]).std is None and Cell.of([]) is None


def cells(*groups):
    return [Cell.of(g) for g in groups]


def test_bold_is_within_two_pooled_sigma_of_the_best():
    # Each trial's seeds spread ±0.1 around its mean: sample std 0.1 each, pooled 0.1.
    a, b, c = ([m - 0.1, m + 0.1] for m in (2.00, 2.15, 2.30))
    assert bold_cells(cells(a, b, c), "lower") == [True, True, False]
    assert bold_cells(cells(c, b, a), "higher") == [True, True, False]
    # With unequal spreads σ is pooled: sqrt((1·0.3² + 1·0.1²) / 2) = 0.2236, so 2σ = 0.447.
    wide, narrow = [1.7, 2.3], [2.35, 2.55]
    sigma = ((statistics.variance(wide) + statistics.variance(narrow)) / 2) ** 0.5
    assert 2 * sigma > statistics.mean(narrow) - statistics.mean(wide) > 2 * 0.1
    assert bold_cells(cells(wide, narrow), "lower") == [True, True]
    # One seed each: no σ, only the best; no direction: nothing; a missing cell: never.
    assert bold_cells(cells([1.0], [1.01], []), "lower") == [True, False, False]
    assert bold_cells(cells(a, b), None) == [False, False]


@pytest.mark.parametrize("column, direction", [
    ("validation/loss", "lower"), ("validation/z_loss", "lower"), ("eval:lm/perplexity", "lower"),
    ("train/step_time", "lower"), ("validation/accuracy", "higher"), ("eval:wmt/bleu", "higher"),
    ("eval:cnndm/rouge2", "higher"), ("eval:squad/f1", "higher"),
    ("eval:squad/exact_match", "higher"), ("eval:x/widgets", None),
])
def test_direction_from_the_metric_name(column, direction):
    assert metric_direction(column) == direction


def test_direction_overrides_by_column_then_by_name():
    assert metric_direction("eval:x/widgets", {"widgets": "higher"}) == "higher"
    assert metric_direction("eval:x/loss", {"eval:x/loss": "higher", "loss": "lower"}) == "higher"


def test_cell_text_shows_n_only_where_seeds_are_missing():
    assert cell_text(Cell.of([1.0, 3.0]), 2) == "2.000 ± 1.414"
    assert cell_text(Cell.of([1.0, 3.0]), 3) == "2.000 ± 1.414 (n=2)"
    assert cell_text(Cell.of([25.0]), 3) == "25.00 (n=1)" and cell_text(None, 3) == "–"


def results_rows(values: dict[tuple[str, int], list[tuple[int, float]]], metric="loss"):
    return [(trial, seed, "validation", metric, step, v)
            for (trial, seed), series in values.items() for step, v in series]


def test_report_summarises_the_chosen_step_over_the_trials_seeds():
    trials = [TrialInfo("a", {}, (0, 1)), TrialInfo("b", {}, (0, 1, 2))]
    rows = results_rows({("a", 0): [(100, 3.0), (200, 2.0)], ("a", 1): [(100, 3.2), (200, 2.2)],
                         ("a", 9): [(200, 99.0)],  # a seed the sweep no longer has
                         ("b", 0): [(100, 3.1), (200, 2.6)], ("b", 1): [(100, 2.9)]})
    final = build_report("t", trials, rows)
    assert final.cells["validation/loss"][0] == Cell.of([2.0, 2.2])
    assert final.cells["validation/loss"][1] == Cell.of([2.6, 2.9])  # b/1's last step is 100
    at_100 = build_report("t", trials, rows, step="100")
    assert at_100.cells["validation/loss"] == cells([3.0, 3.2], [3.1, 2.9])
    best = build_report("t", trials, rows, step="best")
    assert best.cells["validation/loss"][1] == Cell.of([2.6, 2.9])
    with pytest.raises(ValueError, match="no results for metric"):
        build_report("t", trials, rows, metrics=["validation/bleu"])


def test_report_command_writes_markdown_and_csv(tmp_path, capsys):
    """Table 2 rows with made-up losses: bolding, n, paper numbers, in both files."""
    sweep = Sweep("t2", [Trial("ed", tags={"architecture": "encoder_decoder",
                                           "objective": "denoising"}),
                         Trial("lm", tags={"architecture": "language_model", "objective": "lm"}),
                         Trial("odd", tags={"architecture": "encoder_decoder", "objective": "x"})],
                  seeds=(0, 1))
    losses = {("ed", 0): 2.0, ("ed", 1): 2.2, ("lm", 0): 3.0, ("lm", 1): 3.2, ("odd", 0): 2.1}
    with ResultsStore(tmp_path) as store:
        for (trial, seed), loss in losses.items():
            store.mark_running(trial, seed, sweep.trial(trial).tags)
            store.mark_done(trial, seed, [("validation", "loss", 10, loss),
                                          ("validation", "accuracy", 10, 1 / loss),
                                          ("train", "loss", 10, loss)])
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    markdown = (tmp_path / "out" / f"{tmp_path.name}.md").read_text()
    assert capsys.readouterr().out.startswith(markdown)
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:5] == ["Trial", "architecture", "objective", "validation/loss ↓",
                          "validation/accuracy ↑"]
    assert "train/loss" not in markdown
    rows = {r[0]: r for r in ([c.strip() for c in line.strip("|").split("|")]
                              for line in table[1:])}
    assert rows["ed"][3] == "**2.100 ± 0.141**" and rows["lm"][3] == "3.100 ± 0.141"
    assert rows["odd"][3] == "**2.100 (n=1)**"
    assert rows["ed"][5:] == ["T5 Table 2: Encoder-decoder, Denoising", "83.28", "19.24",
                              "80.88", "71.36", "26.98", "39.82", "27.65"]
    assert rows["lm"][5] == "T5 Table 2: Language model, LM" and rows["odd"][5] == ""

    with open(tmp_path / "out" / f"{tmp_path.name}.csv") as f:
        records = {r["trial"]: r for r in csv.DictReader(f)}
    assert float(records["lm"]["validation/loss mean"]) == pytest.approx(3.1)
    assert float(records["lm"]["validation/loss std"]) == pytest.approx(statistics.stdev([3, 3.2]))
    assert records["odd"]["validation/loss n"] == "1"
    assert records["odd"]["validation/loss std"] == ""
    assert [records[t]["validation/loss bold"] for t in ("ed", "lm", "odd")] == ["1", "0", "1"]
    assert float(records["ed"]["t5_SQuAD"]) == 80.88
    # The figures: the table as dot plots, and the training-loss curves.
    for figure in (f"{tmp_path.name}.png", f"{tmp_path.name}_curves.png"):
        assert (tmp_path / "out" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _table2_report(losses: dict[str, float]):
    """A validation-loss report of Table 2 rows (by architecture, denoising), one seed each."""
    trials = [TrialInfo(arch, {"architecture": arch, "objective": "denoising"}, (0,))
              for arch in losses]
    rows = [(arch, 0, "validation", "loss", 10, loss) for arch, loss in losses.items()]
    return build_report("t", trials, rows)


def test_agreement_with_the_papers_ordering_is_spearmans_rho_with_better_as_larger():
    # The paper's GLUE: encoder_decoder 83.28 > prefix_lm 81.82 > language_model 74.70.
    same = _table2_report({"encoder_decoder": 2.0, "prefix_lm": 2.5, "language_model": 3.0})
    assert paper_agreement(same)["validation/loss"] == pytest.approx((1.0, 3))
    reversed_ = _table2_report({"encoder_decoder": 3.0, "prefix_lm": 2.5, "language_model": 2.0})
    assert paper_agreement(reversed_)["validation/loss"] == pytest.approx((-1.0, 3))
    assert "validation/loss vs GLUE -1.00 (n=3)" in to_markdown(reversed_)
    # A translation metric ranks against its own language pair's column, other tasks against
    # GLUE. On these three rows the paper's En-Fr BLEU reverses its GLUE order: GLUE prefix LM
    # denoising 81.82 > 6-layer enc-dec denoising 80.88 > enc-dec LM 79.56; En-Fr 37.98 < 38.40
    # < 39.17. The same scores are then in the paper's En-Fr order and against its GLUE order.
    tags = [("prefix_lm", "denoising"), ("encoder_decoder_half", "denoising"),
            ("encoder_decoder", "lm")]
    trials = [TrialInfo(f"{a}-{o}", {"architecture": a, "objective": o}, (0,)) for a, o in tags]
    rows = [(t.name, 0, f"eval:{task}", metric, 10, score)
            for t, score in zip(trials, (1.0, 2.0, 3.0))
            for task, metric in (("gettext_enfr", "bleu"), ("wiki_topic", "accuracy"))]
    report = build_report("t", trials, rows)
    assert paper_agreement(report)["eval:gettext_enfr/bleu"] == pytest.approx((1.0, 3))
    assert paper_agreement(report)["eval:wiki_topic/accuracy"] == pytest.approx((-1.0, 3))
    assert "eval:gettext_enfr/bleu vs EnFr +1.00 (n=3)" in to_markdown(report)
    # Two rows cannot rank; a row without a published score does not count.
    assert paper_agreement(_table2_report({"encoder_decoder": 2.0, "prefix_lm": 2.5,
                                           "mystery": 1.0}))["validation/loss"] is None


# The paper's rows, and the sweep files that find them.

def test_the_paper_modules_worked_examples_hold():
    """`find_row` and `paper_column` (which column a metric ranks against) by their examples."""
    assert doctest.testmod(paper).failed == 0


def test_paper_rows_shared_between_tables_agree():
    """The paper prints the baseline in Tables 2, 5, 6 and 7; its numbers must be one row's."""
    baseline = find_row({"architecture": "encoder_decoder", "objective": "denoising"})
    assert find_row({"objective": "iid_15_u_u"}).scores == baseline.scores
    assert all(len(row.scores) == len(COLUMNS) for row in PAPER_ROWS)
    # An objective row is the baseline encoder-decoder's only.
    assert find_row({"architecture": "language_model", "objective": "iid_15_u_u"}) is None


def included(gin_file: str, folder: str) -> str:
    """The name of the file that `gin_file` includes from `folder`, e.g. the objective."""
    text = resolve_gin_file(gin_file).read_text()
    return re.search(rf"^include '{folder}/([\w]+)\.gin'", text, re.M).group(1)


@pytest.mark.parametrize("name", sorted(SWEEP_FILES))
def test_every_trial_of_the_t5_sweeps_finds_its_own_paper_row(name):
    sweep = load_sweep(SWEEP_FILES[name])
    experiments = {p.stem for p in (REPO_GIN_DIR / "experiments" / name).glob("*.gin")}
    assert {t.name for t in sweep.trials} == experiments  # every gin experiment, once
    rows = [find_row(t.tags) for t in sweep.trials]
    assert None not in rows and len(set(map(id, rows))) == len(rows)
    for trial in sweep.trials:
        gin_file, = trial.gin_files
        # The tags say what the experiment file really trains.
        if name == "t5_table2":
            assert included(gin_file, "models/t5_table2_tiny") == trial.tags["architecture"]
            objective = included(gin_file, "objectives")
            assert (objective == "iid_15_u_u") == (trial.tags["objective"] == "denoising")
        else:
            assert included(gin_file, "objectives") == trial.tags["objective"]
        assert (REPO_GIN_DIR / "models" / "t5_table2" /
                f"{find_row(trial.tags).match.get('architecture', 'encoder_decoder')}.gin"
                ).is_file()
    assert len(sweep.seeds) >= 2  # a std needs seeds
