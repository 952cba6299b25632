"""Channel selection at 2000 channels (search, multi-select, only selected curves drawn) and ``cryodaq gui``."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from cryodaq.wire import live as lp
from cryodaq.cli import build_parser, main

N = 2000


@pytest.fixture
def selector(qapp, qt_ok):
    from cryodaq.gui.channels import ChannelSelector

    sel = ChannelSelector()
    sel.set_channels(np.arange(N), [f"ch {c}  {5 + c * 1e-4:.4f} GHz" for c in range(N)])
    yield sel
    sel.deleteLater()


def test_2000_channels_filter_and_multi_select(selector, qtbot):
    assert selector.strings.rowCount() == N
    assert selector.selected().tolist() == list(range(16))  # a sensible default
    selector.filter.setText("ch 199")
    assert selector.proxy.rowCount() == 11  # ch 199, ch 1990..1999
    with qtbot.waitSignal(selector.selection_changed) as sig:
        selector.select(np.arange(0, N, 2))
    channels, current = sig.args
    np.testing.assert_array_equal(channels, np.arange(0, N, 2))
    assert current == 0
    selector.view.clearSelection()
    assert len(selector.selected()) == 0 and "0 of 2000" in selector.count.text()


def test_only_selected_curves_are_drawn_at_2000_channels(qapp, qt_ok):
    from cryodaq.gui.docks import RateDock, SpectrumDock
    from cryodaq.gui.docks.base import MAX_CURVES
    from cryodaq.gui.model import LiveModel

    m = LiveModel()
    m.handle(lp.info_message(station="big", stream="phase", units="rad", output_rate_hz=16e3, adc_rate_hz=2e6,
                             channel_coords={"channel": np.arange(N, dtype=np.int32)}, run_path=None,
                             stream_channels=np.arange(16), stream_rate_hz=2e3, source="live"))
    freq = np.linspace(0, 8e3, 257)
    for lo in range(0, N, 128):
        rows = np.arange(lo, min(lo + 128, N))
        m.handle(lp.psd_message(0, freq, np.outer(rows + 1, np.ones(257)), rows, "rad^2/Hz"))
    m.handle(lp.status_message(np.arange(N), elapsed_s=2.0))
    spectrum, rate = SpectrumDock(m), RateDock(m)
    spectrum.set_selection([5, 1500, 1999], 5)
    spectrum.refresh()
    assert sorted(spectrum.curves) == [5, 1500, 1999]
    _, p = spectrum.curves[1500].getOriginalDataset()
    np.testing.assert_allclose(p, 1501.0)
    spectrum.set_selection(range(100, 300), 100)
    spectrum.refresh()
    assert len(spectrum.curves) == MAX_CURVES and f"{MAX_CURVES} of 200 selected" in spectrum.info.text()
    rate.set_selection([7], 7)
    rate.refresh()
    assert len(rate.rates) == N and rate.has_data()  # the rate overview shows every channel


def test_gui_command_line():
    args = build_parser().parse_args(["gui", "--replay", "r.zarr", "--speed", "max", "--start", "12.5"])
    assert args.speed == math.inf and args.start == 12.5 and str(args.replay) == "r.zarr"
    args = build_parser().parse_args(["gui", "--connect", "tcp://10.0.0.2:5556"])
    assert args.connect == "tcp://10.0.0.2:5556" and args.replay is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["gui", "--speed", "0"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["gui", "--connect", "tcp://a:1", "--replay", "r.zarr"])


def test_gui_missing_run_is_a_clear_error(tmp_path, capsys, qt_ok):
    assert main(["gui", "--replay", str(tmp_path / "nope.zarr")]) == 2
    err = capsys.readouterr().err
    assert "nope.zarr" in err and "no such run" in err


def test_without_the_gui_extra_the_error_says_how_to_install_it(monkeypatch):
    from cryodaq.gui.cli import GuiUnavailableError, require_qt

    monkeypatch.setitem(sys.modules, "pyqtgraph", None)  # import pyqtgraph -> ImportError
    with pytest.raises(GuiUnavailableError, match=r'pip install -e "\.\[gui\]"'):
        require_qt()
