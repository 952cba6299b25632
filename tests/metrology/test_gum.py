"""The GUM budget engine: sensitivity coefficients, shares, Welch–Satterthwaite and coverage factors
against the GUM's own worked example (JCGM 100:2008 H.1) and against analytic derivatives; the
linearised budget against a Monte Carlo propagation (GUM Supplement 1) of a nonlinear model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryodaq.metrology.gum import Budget, BudgetRow, Input, effective_count, evaluate, welch_satterthwaite


def test_welch_satterthwaite_and_coverage_factor_reproduce_gum_h1():
    """GUM H.1.6: contributions 25, 9.7, 2.9, 16.6 nm with 18, 25.6, 50, 2 degrees of freedom give
    u_c = 32 nm, ν_eff = 16 (truncated) and U_99 = t_99(16)·u_c = 2.92 × 32 nm = 93 nm."""
    contributions, dofs = [25.0, 9.7, 2.9, 16.6], [18, 25.6, 50, 2]
    nu = welch_satterthwaite(contributions, dofs)
    assert math.floor(nu) == 16
    uc = math.sqrt(sum(c * c for c in contributions))
    assert uc == pytest.approx(32, abs=0.5)
    rows = tuple(BudgetRow(f"x{i}", 0.0, c, "nm", d, "A", "normal", "", 1.0, c, c * c / uc ** 2)
                 for i, (c, d) in enumerate(zip(contributions, dofs)))
    budget = Budget("l", 50000623.6, "nm", rows, uc, nu, 2.0, 2 * uc)
    assert budget.k_student(0.99) == pytest.approx(2.92, abs=0.005)
    assert budget.k_student(0.99) * uc == pytest.approx(93, abs=1)
    assert welch_satterthwaite([1.0, 2.0], [math.inf, math.inf]) == math.inf


def test_sensitivities_contributions_and_shares_match_the_analytic_derivatives():
    """y = a·b²/c: c_a = b²/c, c_b = 2ab/c, c_c = −ab²/c²; both evaluation modes agree; shares sum to 1."""
    inputs = [Input.normal("a", 2.0, 0.02, unit="V"), Input.rectangular("b", 3.0, 0.03 * math.sqrt(3)),
              Input.type_a("c", [4.1, 3.9, 4.0, 4.05, 3.95])]
    for vectorised in (True, False):
        b = evaluate(lambda a, b, c: a * b ** 2 / c, inputs, vectorised=vectorised, measurand="y", units={"y": "W"})
        a_, b_, c_ = 2.0, 3.0, inputs[2].value
        assert b.value == pytest.approx(a_ * b_ ** 2 / c_)
        assert b.row("a").sensitivity == pytest.approx(b_ ** 2 / c_, rel=1e-9)
        assert b.row("b").sensitivity == pytest.approx(2 * a_ * b_ / c_, rel=1e-3)  # central difference over ±u
        assert b.row("c").sensitivity == pytest.approx(-a_ * b_ ** 2 / c_ ** 2, rel=1e-3)
        assert b.row("b").u == pytest.approx(0.03)  # a/√3 of the rectangular half-width
        assert sum(r.share for r in b.rows) == pytest.approx(1.0)
        assert b.u == pytest.approx(math.sqrt(sum(r.contribution ** 2 for r in b.rows)))
        assert b.U == pytest.approx(2 * b.u) and b.k == 2.0 and b.unit == "W"
        assert b.row("c").dof == 4 and b.row("c").kind == "A"
        assert b.dof == pytest.approx(welch_satterthwaite([r.contribution for r in b.rows], [r.dof for r in b.rows]))
    assert b.dominant().name == max(b.rows, key=lambda r: r.contribution).name
    assert b.as_dict()["rows"][0]["dof"] == "inf" and b.as_dict()["dominant"] == b.dominant().name


def test_a_model_with_several_measurands_gives_one_budget_each():
    out = evaluate(lambda x, y: {"sum": x + y, "ratio": x / y}, [Input.normal("x", 1.0, 0.1), Input.normal("y", 2.0, 0.2)],
                   units={"sum": "V", "ratio": ""})
    assert set(out) == {"sum", "ratio"}
    assert out["sum"].u == pytest.approx(math.hypot(0.1, 0.2))
    assert out["ratio"].u == pytest.approx(0.5 * math.hypot(0.1, 0.1), rel=0.01)  # ±u differences: 10 % inputs
    assert out["sum"].unit == "V" and out["sum"].measurand == "sum"


def test_stated_uncertainties_become_standard_ones_and_bad_inputs_are_refused():
    assert Input.from_expanded("t", 1.0, 0.2, k=2).u == pytest.approx(0.1)
    assert Input.u_shaped("m", 1.0, 0.01).u == pytest.approx(0.01 / math.sqrt(2))
    assert Input.triangular("x", 0.0, 0.6).u == pytest.approx(0.6 / math.sqrt(6))
    with pytest.raises(ValueError, match="identifier"):
        Input("not a name", 1.0, 0.1)
    with pytest.raises(ValueError, match=">= 0"):
        Input("x", 1.0, -0.1)
    with pytest.raises(ValueError, match="distribution"):
        Input("x", 1.0, 0.1, distribution="cauchy")
    with pytest.raises(ValueError, match="2 readings"):
        Input.type_a("x", [1.0])
    with pytest.raises(ValueError, match="distinct"):
        evaluate(lambda x: x, [Input.normal("x", 1, 1), Input.normal("x", 1, 1)])


def test_correlated_readings_count_as_fewer():
    rng = np.random.default_rng(5)
    white = rng.normal(size=4000)
    assert effective_count(white) == 4000  # no significant correlation
    smooth = np.convolve(white, np.ones(5) / 5, mode="valid")  # a 5-point moving average: rho ~ 0.8
    n_eff = effective_count(smooth)
    assert 300 < n_eff < 700  # AR(1) approximation of n(1-rho)/(1+rho) ~ 0.11 n


def test_the_linearised_budget_agrees_with_a_monte_carlo_propagation():
    """GUM Supplement 1 (§7): draw every input from its distribution, propagate through the model and
    compare the standard deviation of the output with the GUM u_c. The Y-factor-like model
    T = (Th − Y·Tc)/(Y − 1) with 2 % inputs is mildly nonlinear: the two agree within 2 %."""
    def model(th, tc, y):
        return (th - y * tc) / (y - 1)

    inputs = [Input.normal("th", 3.3, 0.03), Input.rectangular("tc", 0.12, 0.005), Input.u_shaped("y", 8.0, 0.15)]
    budget = evaluate(model, inputs)
    rng = np.random.default_rng(1)
    draws = model(*(i.sample(rng, 200_000) for i in inputs))
    assert np.std(draws) == pytest.approx(budget.u, rel=0.02)
    assert np.mean(draws) == pytest.approx(budget.value, abs=0.05 * budget.u)
    inside = np.mean(np.abs(draws - budget.value) <= budget.U)
    assert 0.94 < inside < 0.975
