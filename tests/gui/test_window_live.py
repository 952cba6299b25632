"""The window on a live demo station (``cryodaq run`` in its own process): every dock receives and draws."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import zarr

pytestmark = pytest.mark.slow

N_TONES = 8


@pytest.fixture(scope="module")
def live(qapp, qt_ok, tmp_path_factory):
    from cryodaq.gui.app import MainWindow
    from cryodaq.gui.demo import DemoAcquisition
    from cryodaq.gui.sources import LiveSource

    out = tmp_path_factory.mktemp("live")
    demo = DemoAcquisition(out, duration_s=120).start()
    window = MainWindow(LiveSource(demo.address), snapshot_dir=out / "snapshots")
    window.resize(1400, 900)
    window.show()
    window.start()
    try:
        yield SimpleNamespace(window=window, demo=demo, out=out)
    finally:
        window.close()
        demo.stop()


def _populated(window) -> bool:
    return all(d.has_data() for d in window.docks) and window.histogram.fit is not None


def test_every_dock_receives_live_data_and_draws_it(live, qtbot):
    w = live.window
    qtbot.waitUntil(lambda: _populated(w), timeout=60_000)
    assert w.channels.strings.rowCount() == N_TONES
    assert w.spectrum.selected.tolist() == list(range(N_TONES))
    # spectrum: one finite positive PSD curve per tone
    assert sorted(w.spectrum.curves) == list(range(N_TONES))
    for curve in w.spectrum.curves.values():
        f, p = curve.getOriginalDataset()
        assert len(f) > 100 and np.all(np.isfinite(p)) and np.all(p > 0)
    # waterfall: a (time, frequency) image of the current channel
    assert w.waterfall.channel == 0 and w.waterfall.image.image.ndim == 2
    assert min(w.waterfall.image.image.shape) > 4
    # IQ: points and an operating point per tone
    assert sorted(w.iq.scatter) == list(range(N_TONES))
    assert all(len(s.data) > 10 for s in w.iq.scatter.values())
    assert all(len(o.data) == 1 for o in w.iq.ops.values())
    # timestream with trigger marks, and pulse records
    assert sorted(w.timestream.curves) == list(range(N_TONES))
    qtbot.waitUntil(lambda: w.timestream.n_marks > 0 and w.timestream.n_records > 0, timeout=20_000)
    # histogram with a Gaussian fit of the pulse-height line
    assert w.histogram.counts.sum() >= 20
    assert np.isfinite(w.histogram.fit.fwhm) and w.histogram.fit.fwhm > 0
    assert w.histogram.readout.text().startswith("FWHM = ")
    # event rate per channel (the simulated world sends photons to every resonator)
    qtbot.waitUntil(lambda: len(w.rate.rates) == N_TONES and np.all(w.rate.rates > 0), timeout=20_000)
    # fridge temperatures
    assert set(w.housekeeping.curves) == {"mxc_temperature", "still_temperature"}
    _, v = w.housekeeping.curves["mxc_temperature"].getOriginalDataset()
    assert len(v) >= 1 and 0.005 < v[-1] < 0.1
    # status bar
    text = w.status.text()
    assert "demo_mkid" in text and "running" in text and "events" in text and "disk" in text
    assert "drops: 0 packets, 0 blocks" in text


def test_only_selected_channels_are_drawn(live, qtbot):
    w = live.window
    qtbot.waitUntil(lambda: _populated(w), timeout=60_000)
    w.channels.select(np.array([3, 5]))
    w.redraw()
    assert sorted(w.spectrum.curves) == [3, 5]
    assert sorted(w.timestream.curves) == [3, 5]
    assert sorted(w.iq.scatter) == [3, 5]
    assert w.waterfall.channel == 3
    w.channels.select(np.arange(N_TONES))
    w.redraw()
    assert sorted(w.spectrum.curves) == list(range(N_TONES))


def test_window_grabs_to_a_png(live, qtbot, tmp_path):
    from pyqtgraph.Qt import QtGui

    w = live.window
    qtbot.waitUntil(lambda: _populated(w), timeout=60_000)
    path = tmp_path / "window.png"
    assert w.grab().save(str(path))
    assert path.stat().st_size > 10_000
    image = QtGui.QImage(str(path))
    assert (image.width(), image.height()) == (w.width(), w.height())
    # not a blank frame: the plots put many different colours on it
    colours = {image.pixel(x, y) for x in range(0, image.width(), 23) for y in range(0, image.height(), 19)}
    assert len(colours) > 20


def test_snapshot_writes_pngs_and_data(live, qtbot):
    w = live.window
    qtbot.waitUntil(lambda: _populated(w), timeout=60_000)
    folder = w.save_snapshot()
    names = {p.name for p in folder.glob("*.png")}
    assert names == {"window.png", *(f"{d.objectName()}.png" for d in w.docks)}
    data = zarr.open_group(str(folder / "data.zarr"), mode="r")
    psd = data["SpectrumDock"]["psd"][:]
    assert psd.shape == (N_TONES, data["SpectrumDock"]["freq_hz"].shape[0])
    assert data["HistogramDock"]["counts"][:].sum() > 0
    assert data["HousekeepingDock"].attrs["units"]["mxc_temperature"] == "K"
    assert data.attrs["source"]["station"] == "demo_mkid"


def test_the_end_of_the_run_reaches_the_window(live, qtbot):
    code, _, err = live.demo.stop()
    assert code == 0, err
    qtbot.waitUntil(lambda: live.window.model.ended is not None, timeout=30_000)
    assert live.window.model.ended["status"] == "complete"
    live.window.redraw()
    assert "ended: complete" in live.window.status.text()
