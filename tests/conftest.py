"""Shared pytest setup: no display, no GPU needed, paths to the shared data sets, synthetic stream pieces
(no instruments needed) for sink, live-view and GUI tests, and a Qt guard."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cryodaq.acquisition.pipeline import PipelineOutput
from cryodaq.acquisition.sinks import StreamInfo
from cryodaq.dsp import EventBatch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CRYODAQ_BACKEND", "numpy")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
STATIONS = PROJECT_ROOT / "stations"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA

RATE = 16_000.0
T0 = 1_800_000_000_000_000_000


def make_info(n_channels: int = 8, run_path: str | None = None) -> StreamInfo:
    coords = {"channel": np.arange(n_channels, dtype=np.int32),
              "tone_frequency_hz": 5e9 + 1e5 * np.arange(n_channels)}
    return StreamInfo(station="test", stream="phase", units="rad", output_rate_hz=RATE, adc_rate_hz=2.048e6,
                      channel_coords=coords, run_path=run_path)


def make_output(k: int, n: int = 256, n_channels: int = 8, n_events: int = 2, record: int = 64,
                rng: np.random.Generator | None = None) -> PipelineOutput:
    """Block ``k`` of a stream: ``n`` samples per channel, ``n_events`` events with records."""
    rng = rng or np.random.default_rng(k)
    first = k * n
    idx = np.arange(first, first + n, dtype=np.int64)
    t_ns = T0 + np.round(idx * 1e9 / RATE).astype(np.int64)
    data = rng.normal(0, 0.01, (n, n_channels)).astype(np.float32)
    iq = (80 * np.exp(1j * data)).astype(np.complex64)
    ev_idx = np.sort(rng.integers(first, first + n, n_events))
    events = EventBatch(ev_idx * 128, rng.integers(0, n_channels, n_events), rng.normal(0.6, 0.02, n_events),
                        np.zeros(n_events), np.zeros(n_events), rng.normal(0, 0.01, (n_events, record)), presamples=16)
    ev_t = T0 + np.round(ev_idx * 1e9 / RATE).astype(np.int64)
    return PipelineOutput(data, idx, t_ns, events, ev_t, iq)


DEMO = STATIONS / "demo_mkid.yaml"


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    """The synthetic-stream helpers of this module."""
    return SimpleNamespace(make_info=make_info, make_output=make_output, RATE=RATE, T0=T0, DEMO=DEMO)


@pytest.fixture(scope="session")
def qt_ok() -> None:
    """Skip (with the reason) where the Qt binding is missing or would crash the test process."""
    pytest.importorskip("PySide6")
    pytest.importorskip("pyqtgraph")
    from cryodaq.gui.cli import GuiUnavailableError, require_qt

    try:
        require_qt()
    except GuiUnavailableError as exc:
        pytest.skip(str(exc))


# --- rfmux's own environment (tests/wire/test_crs.py: its parser; tests/readout/test_crs_mock.py: its mock CRS)


@pytest.fixture(scope="session")
def rfmux_python() -> Path:
    """The Python with rfmux (``$RFMUX_PYTHON`` or the cached venv, built on first use: ~2 min once).

    Skips only when PyPI cannot be reached to build it; any other failure fails the tests."""
    from sim_instruments.servers.rfmux_env import RfmuxUnavailableError, rfmux_python as find

    try:
        return find()
    except RfmuxUnavailableError as exc:
        if exc.index_unreachable:
            pytest.skip(str(exc))
        raise
