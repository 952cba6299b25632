"""Uncertainty budgets by the GUM (JCGM 100:2008): a measurement model + its inputs -> a budget.

A measurement model is a plain Python function of named inputs that returns the measurand
(or a dict of several measurands computed from the same inputs)::

    def model(p_hot, p_cold, t_hot, t_cold):
        y = p_hot / p_cold
        return (t_hot - y * t_cold) / (y - 1)

    budget = evaluate(model, [Input.type_a("p_hot", readings_hot), ..., Input.normal("t_hot", 3.3, 0.01)])
    budget.value, budget.u, budget.U, budget.dof, budget.dominant().name

Each :class:`Input` carries its estimate, its standard uncertainty (JCGM 100 §4.2 for type A,
§4.3 for type B: normal from a certificate's U/k, rectangular a/√3, triangular a/√6,
U-shaped/arcsine a/√2), its degrees of freedom and where its value came from. :func:`evaluate`
gives, per input, the sensitivity coefficient c_i = ∂f/∂x_i (§5.1.3; numerically, by the
central difference over ±u_i that §5.1.3 Note 2 describes, or over a small fraction of u_i),
the contribution u_i(y) = |c_i| u(x_i) and its share u_i(y)²/u_c(y)²; the combined standard
uncertainty u_c = √Σ u_i(y)² (§5.1.2, uncorrelated inputs: write a model whose inputs are
independent, an error shared by two readings being one input), the effective degrees of
freedom by Welch–Satterthwaite (§G.4.1, eq. G.2b) and the expanded uncertainty U = k u_c with
k = 2 by default (§6.2; ``budget.k_student`` gives t_p(ν_eff) of §G.6.4 for comparison).

Why by hand: GTC (MSL) and ``uncertainties`` propagate uncertainty through their own number
types, so a model must be written with their functions; here the model is the same numpy
function that computes the result (vectorised: all 2N+1 evaluations in one call), and the
budget table — inputs, distributions, sources, shares — is the product a round robin compares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["DISTRIBUTIONS", "Budget", "BudgetRow", "Input", "effective_count", "evaluate", "welch_satterthwaite"]

#: the distributions an input may state, and what its ``u`` means for each
DISTRIBUTIONS = ("normal", "rectangular", "triangular", "u-shaped", "student-t")


@dataclass(frozen=True)
class Input:
    """One input quantity of a measurement model.

    ``value``: the estimate x_i; ``u``: its standard uncertainty u(x_i) (already divided by the
    stated coverage factor or √3 ...); ``dof``: degrees of freedom ν_i (inf for a type B
    evaluation taken as exactly known); ``kind``: "A" (statistics of readings) or "B";
    ``distribution``: one of :data:`DISTRIBUTIONS`; ``source``: where value and u come from
    (a calibration certificate and its date, "scatter of 201 trace points" ...).
    """

    name: str
    value: float
    u: float
    dof: float = math.inf
    kind: str = "B"
    distribution: str = "normal"
    unit: str = ""
    source: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"uncertainty input name {self.name!r} must be an identifier (it is a model argument)")
        if not (math.isfinite(self.u) and self.u >= 0):
            raise ValueError(f"uncertainty input {self.name!r}: standard uncertainty must be >= 0, got {self.u!r}")
        if not self.dof > 0:
            raise ValueError(f"uncertainty input {self.name!r}: degrees of freedom must be > 0, got {self.dof!r}")
        if self.kind not in ("A", "B"):
            raise ValueError(f"uncertainty input {self.name!r}: kind must be 'A' or 'B', got {self.kind!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"uncertainty input {self.name!r}: distribution must be one of {DISTRIBUTIONS}, "
                             f"got {self.distribution!r}")

    # -- how the common cases turn a stated uncertainty into a standard uncertainty ------------
    @classmethod
    def normal(cls, name: str, value: float, u: float, **kw: Any) -> Input:
        """A normal (Gaussian) input with standard uncertainty ``u``."""
        return cls(name, float(value), float(u), **kw)

    @classmethod
    def from_expanded(cls, name: str, value: float, expanded: float, k: float = 2.0, **kw: Any) -> Input:
        """A certificate's expanded uncertainty U with its coverage factor k: u = U/k (normal, §4.3.3)."""
        return cls(name, float(value), float(expanded) / float(k), **kw)

    @classmethod
    def rectangular(cls, name: str, value: float, half_width: float, **kw: Any) -> Input:
        """Equally likely anywhere within ``value ± half_width`` (a data-sheet limit): u = a/√3 (§4.3.7)."""
        return cls(name, float(value), float(half_width) / math.sqrt(3.0), distribution="rectangular", **kw)

    @classmethod
    def triangular(cls, name: str, value: float, half_width: float, **kw: Any) -> Input:
        """Triangular within ``value ± half_width``: u = a/√6 (§4.3.9)."""
        return cls(name, float(value), float(half_width) / math.sqrt(6.0), distribution="triangular", **kw)

    @classmethod
    def u_shaped(cls, name: str, value: float, half_width: float, **kw: Any) -> Input:
        """Arcsine (U-shaped) within ``value ± half_width`` — a mismatch of unknown phase: u = a/√2."""
        return cls(name, float(value), float(half_width) / math.sqrt(2.0), distribution="u-shaped", **kw)

    @classmethod
    def type_a(cls, name: str, readings: Any, n_effective: float | None = None, **kw: Any) -> Input:
        """The mean of repeated readings, u = s/√n with ν = n − 1 (§4.2); ``n_effective`` replaces n for
        correlated readings (see :func:`effective_count`)."""
        x = np.asarray(readings, dtype=float).ravel()
        x = x[np.isfinite(x)]
        if x.size < 2:
            raise ValueError(f"uncertainty input {name!r}: a type A evaluation needs >= 2 readings, got {x.size}")
        n = float(x.size if n_effective is None else min(float(n_effective), x.size))
        n = max(n, 2.0)
        kw.setdefault("source", f"scatter of {x.size} readings")
        return cls(name, float(x.mean()), float(x.std(ddof=1) / math.sqrt(n)), dof=n - 1.0, kind="A",
                   distribution="student-t", **kw)

    @property
    def half_width(self) -> float:
        """The half-width a of a bounded distribution (rectangular, triangular, U-shaped); else 2u."""
        factor = {"rectangular": math.sqrt(3.0), "triangular": math.sqrt(6.0), "u-shaped": math.sqrt(2.0)}
        return self.u * factor.get(self.distribution, 2.0)

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """Draws from the input's distribution (for Monte Carlo checks, GUM Supplement 1 §6.4)."""
        if self.u == 0:
            return np.full(size, self.value)
        a = self.half_width
        if self.distribution == "rectangular":
            return rng.uniform(self.value - a, self.value + a, size)
        if self.distribution == "triangular":
            return rng.triangular(self.value - a, self.value, self.value + a, size)
        if self.distribution == "u-shaped":
            return self.value + a * np.sin(rng.uniform(-math.pi, math.pi, size))
        if self.distribution == "student-t" and math.isfinite(self.dof) and self.dof > 2:
            scale = self.u * math.sqrt((self.dof - 2) / self.dof)
            return self.value + scale * rng.standard_t(self.dof, size)
        return rng.normal(self.value, self.u, size)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BudgetRow:
    """One line of a budget: an input and what it does to the measurand."""

    name: str
    value: float
    u: float
    unit: str
    dof: float
    kind: str
    distribution: str
    source: str
    sensitivity: float  # c_i = ∂f/∂x_i, in measurand units per input unit
    contribution: float  # u_i(y) = |c_i| u(x_i), in measurand units
    share: float  # u_i(y)² / u_c(y)², 0..1
    description: str = ""


@dataclass(frozen=True)
class Budget:
    """The uncertainty budget of one measurand (JCGM 100:2008)."""

    measurand: str
    value: float
    unit: str
    rows: tuple[BudgetRow, ...]
    u: float  # combined standard uncertainty u_c(y)
    dof: float  # Welch–Satterthwaite ν_eff
    k: float  # coverage factor used for U
    U: float  # expanded uncertainty k u_c
    method: str = "GUM (JCGM 100:2008), first-order propagation"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def interval(self) -> tuple[float, float]:
        """value ± U."""
        return self.value - self.U, self.value + self.U

    def row(self, name: str) -> BudgetRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"budget of {self.measurand!r} has no input {name!r}; it has {[r.name for r in self.rows]}")

    def dominant(self) -> BudgetRow:
        """The input with the largest share."""
        return max(self.rows, key=lambda r: r.share)

    def k_student(self, p: float = 0.9545) -> float:
        """t_p(ν_eff): the coverage factor for coverage probability ``p``, with ν_eff truncated to the next
        lower integer as §G.6.4 says; the normal quantile when ν_eff is infinite."""
        from scipy import stats

        if not math.isfinite(self.dof):
            return float(stats.norm.ppf(0.5 + p / 2))
        return float(stats.t.ppf(0.5 + p / 2, max(1, math.floor(self.dof))))

    def covers(self, truth: float) -> bool:
        """Whether ``truth`` lies within value ± U."""
        return abs(self.value - truth) <= self.U

    def table(self) -> list[dict[str, Any]]:
        """The rows as dicts (one per input), in the order given: what a CSV budget table holds."""
        return [asdict(r) for r in self.rows]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (infinite degrees of freedom as the string "inf")."""
        def clean(x: Any) -> Any:
            return "inf" if isinstance(x, float) and math.isinf(x) else x

        return {"measurand": self.measurand, "value": self.value, "unit": self.unit,
                "standard_uncertainty": self.u, "expanded_uncertainty": self.U, "coverage_factor": self.k,
                "effective_dof": clean(self.dof), "k_student_95": self.k_student(), "method": self.method,
                "dominant": self.dominant().name if self.rows else None, "notes": list(self.notes),
                "rows": [{k: clean(v) for k, v in r.items()} for r in self.table()]}


def welch_satterthwaite(contributions: Sequence[float], dofs: Sequence[float]) -> float:
    """ν_eff = u_c⁴ / Σ u_i(y)⁴/ν_i (JCGM 100:2008 eq. G.2b); inf when every ν_i is inf or u_c = 0."""
    c = np.asarray(contributions, dtype=float)
    nu = np.asarray(dofs, dtype=float)
    uc2 = float(np.sum(c ** 2))
    finite = np.isfinite(nu) & (c > 0)
    denominator = float(np.sum(c[finite] ** 4 / nu[finite]))
    if uc2 == 0 or denominator == 0:
        return math.inf
    return uc2 ** 2 / denominator


ModelResult = float | np.ndarray | Mapping[str, Any]


def _call(model: Callable[..., ModelResult], columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = model(**columns)
    if isinstance(out, Mapping):
        return {str(k): np.asarray(v, dtype=float) for k, v in out.items()}
    return {"": np.asarray(out, dtype=float)}


def evaluate(model: Callable[..., ModelResult], inputs: Sequence[Input], *, k: float = 2.0,
             measurand: str | None = None, units: Mapping[str, str] | None = None, step: float = 1.0,
             vectorised: bool = True) -> Any:
    """The budget(s) of ``model`` at ``inputs`` (module docstring).

    ``model(**{input.name: value})`` returns the measurand, or a dict of measurands: then a dict
    of :class:`Budget` by measurand name is returned (one evaluation serves them all).
    ``step``: the derivative's half-step in units of each u_i (1.0: ±u_i, §5.1.3 Note 2; smaller
    for a model that is strongly curved over ±u_i). ``vectorised``: call the model once with an
    array per input holding the 2N+1 evaluation points (the model must broadcast, as numpy code
    does); False calls it 2N+1 times with scalars.
    """
    inputs = list(inputs)
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise ValueError(f"uncertainty inputs must have distinct names, got {names}")
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    x0 = np.array([i.value for i in inputs], dtype=float)
    h = np.array([step * i.u if i.u > 0 else 0.0 for i in inputs])
    n = len(inputs)
    points = np.tile(x0, (2 * n + 1, 1))
    for j in range(n):
        points[1 + 2 * j, j] += h[j]
        points[2 + 2 * j, j] -= h[j]
    if vectorised:
        values = _call(model, {name: points[:, j] for j, name in enumerate(names)})
        values = {key: np.broadcast_to(v, (2 * n + 1,)) for key, v in values.items()}
    else:
        rows = [_call(model, {name: float(p[j]) for j, name in enumerate(names)}) for p in points]
        values = {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}
    units = dict(units or {})
    budgets = {}
    for key, y in values.items():
        centre = float(y[0])
        sens = np.zeros(n)
        for j in range(n):
            if h[j] > 0:
                sens[j] = (y[1 + 2 * j] - y[2 + 2 * j]) / (2 * h[j])
        contrib = np.abs(sens) * np.array([i.u for i in inputs])
        uc = float(math.sqrt(float(np.sum(contrib ** 2))))
        shares = contrib ** 2 / uc ** 2 if uc > 0 else np.zeros(n)
        nu = welch_satterthwaite(contrib, [i.dof for i in inputs])
        rows = tuple(BudgetRow(i.name, i.value, i.u, i.unit, i.dof, i.kind, i.distribution, i.source,
                               float(c), float(u_i), float(s), i.description)
                     for i, c, u_i, s in zip(inputs, sens, contrib, shares))
        name = key or measurand or "y"
        notes = () if np.all(np.isfinite(y)) else ("the model is not finite near the estimate",)
        budgets[key] = Budget(name, centre, units.get(key, units.get(name, "")), rows, uc, nu, float(k), float(k) * uc,
                              notes=notes)
    if set(budgets) == {""}:
        return budgets[""]
    return budgets


def effective_count(readings: Any) -> float:
    """How many independent readings a series of correlated ones is worth, n(1 − ρ)/(1 + ρ).

    ρ is the lag-1 autocorrelation (an AR(1) model, as in Zhang, Metrologia 43 (2006) S276):
    adjacent points of an analyzer trace spaced closer than the RBW are correlated, and their
    scatter then understates the uncertainty of the mean. A ρ not significantly above 0
    (below 2/√n) is taken as 0: the readings count as independent.
    """
    x = np.asarray(readings, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = x.size
    if n < 3:
        return float(n)
    d = x - x.mean()
    denom = float(np.dot(d, d))
    rho = float(np.dot(d[:-1], d[1:]) / denom) if denom > 0 else 0.0
    if rho <= 2.0 / math.sqrt(n):
        return float(n)
    return max(2.0, n * (1 - rho) / (1 + rho))
