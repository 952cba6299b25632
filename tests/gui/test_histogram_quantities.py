"""The histogram dock switches between trigger amplitude, optimal-filter value and energy (offscreen Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.wire import live as lp


def test_histogram_switches_between_amplitude_filtered_value_and_energy(qapp, qt_ok) -> None:
    from cryodaq.gui.docks.histogram import HistogramDock
    from cryodaq.gui.model import LiveModel

    m = LiveModel()
    m.handle(lp.info_message(station="s", stream="current", units="A", output_rate_hz=1e5, adc_rate_hz=1e5,
                             channel_coords={"channel": np.arange(2, dtype=np.int32)}, run_path="r",
                             stream_channels=[0, 1], stream_rate_hz=1e3, source="live"))
    rng = np.random.default_rng(2)
    n = 2000
    cols = {"t": np.arange(n), "channel": rng.integers(0, 2, n).astype(np.int32),
            "amplitude": rng.normal(9e-6, 3e-8, n).astype(np.float32),
            "of_amplitude": rng.normal(8.8e-6, 1e-9, n).astype(np.float32),
            "energy": rng.normal(5898.8, 1.0 / 2.3548, n).astype(np.float32)}
    m.handle(lp.events_message(cols))
    dock = HistogramDock(m)
    dock.set_selection([0, 1], 0)
    widths = {}
    for text in ("amplitude", "filtered value", "energy"):
        dock.quantity.setCurrentText(text)
        dock.draw()
        assert dock.fit is not None
        widths[text] = dock.fit.fwhm
    assert widths["energy"] == pytest.approx(1.0, rel=0.15)
    assert widths["filtered value"] == pytest.approx(2.3548e-9, rel=0.15)
    assert widths["amplitude"] == pytest.approx(2.3548 * 3e-8, rel=0.15)
    assert dock.plot.getPlotItem().getAxis("bottom").labelUnits == "eV"
    # a run without the live optimal filter: no filtered values, and the dock says where they come from
    m2 = LiveModel()
    m2.handle(lp.events_message({k: cols[k] for k in ("t", "channel", "amplitude")}))
    empty = HistogramDock(m2)
    empty.set_selection([0, 1], 0)
    empty.quantity.setCurrentText("filtered value")
    empty.draw()
    assert empty.fit is None and "optimal_filter" in empty.readout.text()
