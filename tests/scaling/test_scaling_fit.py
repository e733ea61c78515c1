"""Each fitter recovers the constants that generated noisy synthetic data, and the published
Chinchilla and Epoch constants give their published compute-optimal allocations."""

import numpy as np
import pytest
from scaling_synthetic import CHINCHILLA, CHINCHILLA_TEX, EPOCH, isoflop_grid, numeric_optimum

from t2t.scaling.fit import (CostModel, PowerLaw, bootstrap_parametric,
                             fit_cost_model, fit_isoflop, fit_parametric, fit_power_law,
                             huber_objective, kaplan_fits, lower_envelope)
from t2t.scaling.points import ScalingPoint

GOPHER_FLOPS = 5.76e23


def test_lower_envelope_keeps_the_points_nothing_cheaper_beats():
    assert lower_envelope([1, 2, 2, 3], [5, 4, 3, 3.5]).tolist() == [0, 2]
    rng = np.random.default_rng(0)
    x, loss = rng.uniform(1, 10, 50), rng.uniform(1, 10, 50)
    front = lower_envelope(x, loss)
    for i in front:  # nothing at smaller or equal x does better...
        assert not np.any((x <= x[i]) & (loss < loss[i]))
    for i in set(range(50)) - set(front):  # ...and everything left out is beaten so
        assert np.any((x <= x[i]) & (loss < loss[i]))


@pytest.mark.parametrize("alpha, scale, lo, hi", [(0.076, 8.8e13, 1e6, 1e9),  # Kaplan L(N)
                                                  (0.095, 5.4e13, 1e8, 1e11)])  # Kaplan L(D)
def test_power_law_recovers_kaplans_constants(alpha, scale, lo, hi):
    rng = np.random.default_rng(1)
    x = np.geomspace(lo, hi, 20)
    loss = PowerLaw(alpha, scale)(x) * np.exp(rng.normal(0, 0.002, x.size))
    fit = fit_power_law(x, loss)
    assert fit.alpha == pytest.approx(alpha, rel=0.03)
    assert np.log10(fit.scale) == pytest.approx(np.log10(scale), abs=0.3)


def test_kaplan_compute_law_is_fitted_on_the_frontier():
    """Runs off the frontier (too small or too big for their budget) must not bend L(C), even
    where, spending their budget to within a step, they used a little less compute."""
    law = PowerLaw(0.05, 3.1e8 * 8.64e19)  # Kaplan's L(C_min)
    points = []
    for c in np.geomspace(1e18, 1e22, 9):
        # The compute-optimal run, and worse ones; the factors' geometric mean is 1.
        for penalty, spent in ((0.0, 1.004), (0.05, 0.996), (0.2, 1 / (1.004 * 0.996))):
            points.append(ScalingPoint("x", 1e8 * (1 + penalty), 1e9, float(c * spent),
                                       float(law(c)) * (1 + penalty)))
    fit = kaplan_fits(points)["flops"]
    assert fit.alpha == pytest.approx(0.05, rel=1e-6)
    assert fit.scale == pytest.approx(law.scale, rel=1e-4)


def test_cost_model_recovers_flops_per_token():
    truth = CostModel(coefficient=40.0, exponent=0.7)
    points = [ScalingPoint("x", n, d, float(truth.flops_per_token(n)) * d, 3.0)
              for n in (1e5, 1e6, 1e7) for d in (1e8, 1e9)]
    fit = fit_cost_model(points)
    assert (fit.coefficient, fit.exponent) == pytest.approx((40.0, 0.7), rel=1e-9)


def test_huber_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    log_n, log_d = rng.uniform(15, 22, 30), rng.uniform(18, 26, 30)
    log_loss = np.log(CHINCHILLA(np.exp(log_n), np.exp(log_d))) + rng.normal(0, 0.01, 30)
    theta = np.array([6.0, 6.5, 0.5, 0.3, 0.3])
    _, grad = huber_objective(theta, log_n, log_d, log_loss)
    step = 1e-6
    numeric = [(huber_objective(theta + step * e, log_n, log_d, log_loss)[0]
                - huber_objective(theta - step * e, log_n, log_d, log_loss)[0]) / (2 * step)
               for e in np.eye(5)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-10)


def test_approach_2_recovers_the_allocation_exponents():
    budgets = np.geomspace(1e18, 1e22, 5)
    points = isoflop_grid(CHINCHILLA, budgets, sizes=9, spread=30.0, noise=0.001, seed=3)
    fit = fit_isoflop(points, CostModel())
    assert all(m.bracketed for m in fit.minima) and len(fit.minima) == 5
    for m in fit.minima:
        n_opt, d_opt = numeric_optimum(CHINCHILLA, m.flops)
        assert m.params == pytest.approx(n_opt, rel=0.35)
        assert m.tokens * m.params * 6 == pytest.approx(m.flops, rel=1e-9)
    a = CHINCHILLA.beta / (CHINCHILLA.alpha + CHINCHILLA.beta)
    assert fit.params.exponent == pytest.approx(a, abs=0.03)
    assert fit.tokens.exponent == pytest.approx(1 - a, abs=0.03)


def test_approach_2_does_not_trust_a_curve_whose_minimum_is_outside_it():
    c = 1e20
    n_opt, _ = numeric_optimum(CHINCHILLA, c)
    points = [ScalingPoint("x", n, c / (6 * n), c, float(CHINCHILLA(n, c / (6 * n))))
              for n in n_opt * np.array([3.0, 6.0, 12.0, 24.0])]  # all too big for the budget
    (minimum,) = fit_isoflop(points, CostModel()).minima
    assert not minimum.bracketed


@pytest.fixture(scope="module")
def noisy_chinchilla():
    points = isoflop_grid(CHINCHILLA, np.geomspace(1e18, 1e22, 5), sizes=7, spread=100.0,
                          noise=0.003, seed=4)
    columns = [np.array([getattr(p, k) for p in points]) for k in ("params", "tokens", "loss")]
    return columns, fit_parametric(*columns, refine=12)


def test_approach_3_recovers_chinchillas_constants(noisy_chinchilla):
    _, fit = noisy_chinchilla
    law = fit.law
    assert law.E == pytest.approx(CHINCHILLA.E, abs=0.05)
    assert law.alpha == pytest.approx(CHINCHILLA.alpha, abs=0.03)
    assert law.beta == pytest.approx(CHINCHILLA.beta, abs=0.03)
    assert law.params_exponent() == pytest.approx(CHINCHILLA.params_exponent(), abs=0.02)
    n, d = np.geomspace(1e8, 1e11, 5), np.geomspace(1e9, 1e12, 5)
    np.testing.assert_allclose(law(n, d), CHINCHILLA(n, d), rtol=0.01)


def test_the_bootstrap_brackets_the_truth_and_is_seeded(noisy_chinchilla):
    columns, fit = noisy_chinchilla
    boot = bootstrap_parametric(*columns, fit, samples=20, seed=5)
    for name, truth in (("E", CHINCHILLA.E), ("alpha", CHINCHILLA.alpha),
                        ("beta", CHINCHILLA.beta), ("a", CHINCHILLA.params_exponent())):
        low, high = boot.intervals[name]
        assert low <= truth <= high and high - low < 0.5 * truth, name
    again = bootstrap_parametric(*columns, fit, samples=3, seed=5)
    assert again.intervals == bootstrap_parametric(*columns, fit, samples=3, seed=5).intervals


def test_fitting_needs_five_runs():
    with pytest.raises(ValueError, match="at least 5 runs"):
        fit_parametric([1e6, 1e7], [1e8, 1e9], [3.0, 2.5])


@pytest.mark.parametrize("law", [CHINCHILLA, EPOCH, CHINCHILLA_TEX])
@pytest.mark.parametrize("cost", [CostModel(), CostModel(30.0, 0.8)])
def test_closed_form_allocation_is_the_numerical_optimum(law, cost):
    for c in (1e18, 1e21, 1e24):
        n, d = law.compute_optimal(c, cost)
        n_ref, d_ref = numeric_optimum(law, c, cost)
        assert (n, d) == pytest.approx((n_ref, d_ref), rel=1e-5)


@pytest.mark.parametrize("law, tokens_per_param, gopher_params", [
    # T5_REFERENCE §10.3: D*/N* at C = 1e18, 1e20, 1e21, 5.76e23, 1e25 and N* at Gopher's budget.
    (CHINCHILLA, [25.7, 40.1, 50.1, 92.6, 122.1], 32.2e9),
    (CHINCHILLA_TEX, [18.6, 27.8, 34.0, 59.1, 75.7], 40.3e9),
    (EPOCH, [25.7, 22.9, 21.6, 18.4, 17.1], 72.3e9),
])
def test_published_constants_give_their_published_allocation(law, tokens_per_param, gopher_params):
    n, d = law.compute_optimal(np.array([1e18, 1e20, 1e21, GOPHER_FLOPS, 1e25]))
    np.testing.assert_allclose(d / n, tokens_per_param, rtol=0.005)
    assert law.compute_optimal(GOPHER_FLOPS)[0] == pytest.approx(gopher_params, rel=0.005)


def test_epoch_refit_gives_about_twenty_tokens_per_parameter():
    """Only Epoch's refit reproduces Chinchilla's Table 3 rule (≈ 20 tokens per parameter)."""
    for flops in (1.21e20, 1.23e22, 5.76e23, 3.85e24):  # Chinchilla Table 3's 1B-175B budgets
        n, d = EPOCH.compute_optimal(flops)
        assert 15 < d / n < 25
    assert EPOCH.params_exponent() == pytest.approx(0.5126, abs=5e-4)
    assert CHINCHILLA.params_exponent() == pytest.approx(0.452, abs=5e-4)
