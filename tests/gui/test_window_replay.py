"""The window replaying a stored run: every dock draws, seeking and stepping work."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryodaq.acquisition.session import StreamSession
from cryodaq.station import load_station_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory, synth):
    out = tmp_path_factory.mktemp("runs")
    summary = StreamSession(load_station_config(synth.DEMO), out, simulate=True).run(3.0)
    assert summary.status == "complete"
    return summary.path


@pytest.fixture
def window(qapp, qt_ok, stored_run, tmp_path):
    from cryodaq.gui.app import MainWindow
    from cryodaq.gui.sources import ReplaySource

    w = MainWindow(ReplaySource(stored_run, speed=math.inf), snapshot_dir=tmp_path)
    w.resize(1400, 900)
    w.show()
    yield w
    w.close()


def test_replay_draws_every_dock_and_ends(window, qtbot):
    window.start()
    qtbot.waitUntil(lambda: window.model.ended is not None, timeout=30_000)
    qtbot.waitUntil(lambda: all(d.has_data() for d in window.docks), timeout=10_000)
    m = window.model
    assert m.info["source"] == "replay" and m.n_channels == 8
    assert sorted(window.spectrum.curves) == list(range(8))  # PSDs from the run's spectra/
    assert window.iq.info.text().endswith("(rebuilt from stored phase: points lie on the calibration circle)")
    total = int(m.events_per_channel.sum())
    assert total == len(m.ev_t) > 100  # every stored event reached the model
    # the histogram spans the central 99 % of amplitudes (outliers do not squash the line)
    qtbot.waitUntil(lambda: window.histogram.counts.sum() >= 0.98 * total, timeout=5_000)
    assert len(m.hk["mxc_temperature"][0]) >= 1  # ~1 Hz readings over a 3 s run
    assert window.timestream.n_marks > 0 and window.timestream.n_records > 0
    window.redraw()
    assert "replay ended" in window.status.text() or "ended: complete" in window.status.text()


def test_seek_starts_the_display_over_from_there(window, qtbot, stored_run):
    src = window.source
    src.start()
    src.pause()
    qtbot.waitUntil(lambda: window.model.info != {}, timeout=5_000)
    src.seek(1.5)
    m = window.model
    assert len(m.stream_t) == 0 and len(m.ev_t) == 0  # a jump forgets what was shown
    t_hk = m.hk["mxc_temperature"][0].view()
    assert len(t_hk) and np.all(t_hk < src.t0_ns * 1e-9 + 1.5)  # fridge history up to the jump, at once
    src.advance(0.5)
    assert src.position_s == pytest.approx(2.0, abs=1e-6)
    t = m.stream_t.view()
    assert len(t) > 0.4 * 2000
    assert t[0] >= src.t0_ns * 1e-9 + 1.5 - 1e-3 and t[-1] <= src.t0_ns * 1e-9 + 2.0
    ev = m.ev_t.view()
    assert len(ev) and np.all((ev >= src.t0_ns * 1e-9 + 1.5) & (ev < src.t0_ns * 1e-9 + 2.0))
    assert m.status["elapsed_s"] == pytest.approx(1.5, abs=0.6)


def test_replay_from_a_start_time(qapp, qt_ok, stored_run):
    from cryodaq.gui.sources import ReplaySource

    src = ReplaySource(stored_run, speed=1.0, start_s=2.0)
    try:
        src.start()
        assert src.position_s == pytest.approx(2.0)
        src.pause()
        with pytest.raises(ValueError, match="speed"):
            src.set_speed(0)
    finally:
        src.close()
