"""`t2t scaling plan|fit|plot` end to end: a sweep file that loads, fits from a small CSV, PNGs."""

import csv
import json

import pytest
from scaling_synthetic import CHINCHILLA, isoflop_grid

from t2t.scaling.cli import main
from t2t.scaling.fit import ParametricLoss
from t2t.scaling.isoflop import LadderSetup, plan_isoflop
from t2t.sweeps.sweep_file import load_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results_csv(tmp_path_factory):
    """Two families on isoFLOP grids at small scale, the second with a different law."""
    points = (isoflop_grid(CHINCHILLA, [1e12, 1e13, 1e14], sizes=5, noise=0.002, seed=0,
                           family="decoder_only")
              + isoflop_grid(ParametricLoss(2.0, 300.0, 600.0, 0.3, 0.35),
                             [1e12, 1e13, 1e14], sizes=5, noise=0.002, seed=1,
                             family="encoder_decoder"))
    path = tmp_path_factory.mktemp("csv") / "points.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["family", "params", "tokens", "flops", "loss", "note"])
        writer.writerows([p.family, p.params, p.tokens, p.flops, p.loss, "x"] for p in points)
    return path


def test_fit_writes_json_and_markdown(results_csv, tmp_path, capsys):
    argv = ["fit", str(results_csv), "--out", str(tmp_path), "--bootstrap", "4", "--starts", "4"]
    assert main(argv) == 0
    fits = json.loads((tmp_path / "scaling_fits.json").read_text())["families"]
    assert set(fits) == {"decoder_only", "encoder_decoder"}
    chinchilla = fits["decoder_only"]
    assert chinchilla["runs"] == 15 and not chinchilla["notes"]
    assert chinchilla["cost_model"]["exponent"] == pytest.approx(1.0)
    assert chinchilla["isoflop"]["params"]["exponent"] == pytest.approx(0.45, abs=0.05)
    assert chinchilla["parametric"]["alpha"] == pytest.approx(0.34, abs=0.05)
    low, high = chinchilla["parametric"]["intervals"]["beta"]
    assert low <= chinchilla["parametric"]["beta"] <= high
    assert fits["encoder_decoder"]["parametric"]["beta"] == pytest.approx(0.35, abs=0.05)
    markdown = (tmp_path / "scaling_fits.md").read_text()
    assert "## decoder_only (15 runs)" in markdown and "approach 3" in markdown
    assert "Wrote" in capsys.readouterr().out


def test_plot_writes_nonempty_pngs_per_family(results_csv, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["plot", str(results_csv), "--out", str(tmp_path), "--starts", "4"]) == 0
    for family in ("decoder_only", "encoder_decoder"):
        for name in ("loss_vs_compute", "isoflop", "optimal_allocation"):
            data = (tmp_path / family / f"{name}.png").read_bytes()
            assert data.startswith(PNG_MAGIC) and len(data) > 10_000, (family, name)


def test_plan_writes_a_sweep_file_with_the_planned_trials(tmp_path, capsys):
    out = tmp_path / "ladder" / "sweep.py"
    argv = ["plan", "--family", "decoder_only", "--budgets", "1e11,1e12", "--knobs", "1,2,3",
            "--feature_lengths", "{'targets': 64}", "--batch_size", "8", "--vocab_size", "1024",
            "--min_steps", "5", "--out", str(out)]
    assert main(argv) == 0
    sweep = load_sweep(out)
    setup = LadderSetup("decoder_only", ("experiments/gpt2_tiny_lm.gin",), {"targets": 64}, 8, 1024)
    expected = plan_isoflop(setup, [1e11, 1e12], [1, 2, 3], min_steps=5)
    assert sweep.name == "ladder"
    assert [t.name for t in sweep.trials] == [r.name for r in expected]
    assert [t.bindings["TRAIN_STEPS"] for t in sweep.trials] == [r.steps for r in expected]
    printed = capsys.readouterr().out
    assert all(r.name in printed for r in expected)


def test_bad_input_exits_2_with_the_reason(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("family,params\nx,1\n")
    assert main(["fit", str(bad)]) == 2
    assert "missing column(s)" in capsys.readouterr().err
