"""Axes: qcodes sweeps and Axis, nesting and zipping, what is set when, settle delays."""

from __future__ import annotations

import numpy as np
import pytest
from qcodes.parameters import Parameter

from cryodaq.sweeps import ArraySweep, Axis, LinSweep, LogSweep, TogetherSweep, sweep, zip_axes
from cryodaq.sweeps.axes import as_axis, axis_shape


def recorded(name: str, log: list) -> Parameter:
    """A settable parameter that logs every set as (name, value)."""
    return Parameter(name, set_cmd=lambda v: log.append((name, v)), get_cmd=None)


def test_qcodes_sweeps_become_axes_named_after_their_parameter():
    p = Parameter("bias", set_cmd=None, unit="A")
    lin = as_axis(LinSweep(p, 0, 1, 5, delay=0.2))
    assert lin.dim == "bias" and lin.parts[0].units == "A" and lin.parts[0].delay_s == 0.2
    np.testing.assert_allclose(lin.parts[0].values, [0, 0.25, 0.5, 0.75, 1])
    # qcodes' LogSweep takes exponents (numpy.logspace); Axis.log takes the end values (geomspace)
    np.testing.assert_allclose(as_axis(LogSweep(p, -3, -1, 3)).parts[0].values, [1e-3, 1e-2, 1e-1])
    np.testing.assert_allclose(Axis.log("f", 1e3, 1e5, 3).parts[0].values, [1e3, 1e4, 1e5])
    assert list(as_axis(ArraySweep(p, [3, 1, 2])).parts[0].values) == [3, 1, 2]
    q = Parameter("gate", set_cmd=None)
    together = as_axis(TogetherSweep(LinSweep(p, 0, 1, 3), LinSweep(q, 5, 7, 3)))
    assert together.dim == "bias" and together.names == ["bias", "gate"] and len(together) == 3


def test_axis_errors_name_the_problem():
    with pytest.raises(ValueError, match="equal lengths"):
        zip_axes(Axis("a", [1, 2]), Axis("b", [1, 2, 3]))
    with pytest.raises(ValueError, match="distinct dimension names"):
        axis_shape([Axis("a", [1]), Axis("a", [2])])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        Axis("a", [])
    with pytest.raises(ValueError, match="one sign"):
        Axis.log("a", -1, 1, 3)
    with pytest.raises(ValueError, match="not valid"):
        Axis("a/b", [1])


def test_nested_axes_set_only_what_changed_outer_first():
    log: list = []
    outer, inner = recorded("outer", log), recorded("inner", log)
    seen = []
    res = sweep(ArraySweep(outer, [1, 2]), ArraySweep(inner, [10, 20, 30]),
                lambda p: seen.append(dict(p.values)) or {"y": p["outer"] * 100 + p["inner"]}, name="grid")
    assert log == [("outer", 1), ("inner", 10), ("inner", 20), ("inner", 30),
                   ("outer", 2), ("inner", 10), ("inner", 20), ("inner", 30)]
    assert seen[0] == {"outer": 1, "inner": 10} and len(seen) == 6
    ds = res.dataset()
    assert ds["y"].dims == ("outer", "inner")
    np.testing.assert_array_equal(ds["y"].values, [[110, 120, 130], [210, 220, 230]])
    assert bool(ds["done"].all()) and res.measured == 6 and res.status == "complete"


def test_an_inner_axis_of_length_one_is_set_once():
    log: list = []
    a, b = recorded("a", log), recorded("b", log)
    sweep(Axis.linear("a", 0, 1, 3, a), Axis.list("b", [5], b), lambda p: {"y": 1.0}, name="s")
    assert [x for x in log if x[0] == "b"] == [("b", 5)]
    assert [x[1] for x in log if x[0] == "a"] == [0.0, 0.5, 1.0]


def test_zipped_axes_set_together_and_store_a_coordinate_each():
    log: list = []
    a, b = recorded("a", log), recorded("b", log)
    res = sweep(zip_axes(Axis("a", [1, 2, 3], a), Axis("b", [7, 8, 9], b)), lambda p: {"y": p["a"] + p["b"]},
                name="z")
    assert log == [("a", 1), ("b", 7), ("a", 2), ("b", 8), ("a", 3), ("b", 9)]
    ds = res.dataset()
    assert ds["y"].dims == ("a",) and list(ds["b"].values) == [7, 8, 9] and ds["b"].dims == ("a",)
    np.testing.assert_array_equal(ds["y"].values, [8, 10, 12])


def test_settle_delays_and_after_set_actions_follow_each_set():
    events: list = []
    a = Parameter("a", set_cmd=lambda v: events.append(("set a", v)))
    b = Parameter("b", set_cmd=lambda v: events.append(("set b", v)))
    fake_sleep = lambda s: events.append(("sleep", s))
    sweep(LinSweep(a, 0, 1, 2, delay=0.5, post_actions=[lambda: events.append(("after a",))]),
          Axis("b", [1, 2], b, delay_s=0.125),
          lambda p: events.append(("measure",)) or {"y": 0.0}, name="d", sleep=fake_sleep)
    assert events[:7] == [("set a", 0.0), ("sleep", 0.5), ("after a",), ("set b", 1), ("sleep", 0.125),
                          ("measure",), ("set b", 2)]
    assert events.count(("sleep", 0.5)) == 2 and events.count(("sleep", 0.125)) == 4
    assert events.count(("measure",)) == 4


def test_a_callable_target_and_an_index_axis():
    applied: list = []
    res = sweep(Axis("temperature_k", [0.1, 0.2], applied.append, units="K"), Axis("resonator", [0, 1, 2]),
                lambda p: {"v": p["temperature_k"] * 10 + p["resonator"]}, name="cb")
    assert applied == [0.1, 0.2]
    np.testing.assert_allclose(res.dataset()["v"].values, [[1, 2, 3], [2, 3, 4]])
