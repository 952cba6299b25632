"""Fixtures for the run-format tests: a small run with every group filled by a known pattern."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cryodaq.storage import RunWriter

N_CH = 4
RATE = 1000.0


def stream_block(start: int, n: int, n_ch: int = N_CH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase pattern value = sample_index + channel / 8 (exact in float32), with t = 1 µs per sample."""
    si = np.arange(start, start + n, dtype=np.int64)
    data = (si[:, None] + np.arange(n_ch)[None, :] / 8).astype(np.float32)
    return data, si, 1_700_000_000_000_000_000 + si * 1000


def event_batch(start: int, n: int) -> dict[str, np.ndarray]:
    """Events number start..start+n: sample_index = 10 k, channel = k % N_CH, amplitude = k."""
    k = np.arange(start, start + n)
    return {
        "t": 1_700_000_000_000_000_000 + 10 * k * 1000,
        "sample_index": 10 * k,
        "channel": k % N_CH,
        "amplitude": k.astype(np.float32),
        "baseline": np.full(n, 0.5, np.float32),
    }


@pytest.fixture
def writer(tmp_path: Path) -> RunWriter:
    w = RunWriter.create(
        tmp_path,
        station_name="bench-1",
        station_snapshot={"instruments": {"fridge": {"parameters": {"T": {"value": np.float64(0.012)}}}}},
        config={"pipeline": {"n_tones": N_CH}},
        clock={"source": "ntp", "uncertainty_s": 1e-3},
    )
    w.declare_stream(
        "phase", n_channels=N_CH, sample_rate_hz=RATE, units="rad", chunk_time=64,
        channel_coords={"channel": np.arange(10, 10 + N_CH), "tone_frequency_hz": 4e9 + 1e6 * np.arange(N_CH)},
    )
    return w


@pytest.fixture
def pat() -> SimpleNamespace:
    """The data patterns above, for test modules (importlib import mode cannot import conftest)."""
    return SimpleNamespace(stream_block=stream_block, event_batch=event_batch, N_CH=N_CH, RATE=RATE)
