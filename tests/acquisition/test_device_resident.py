"""The pipelines on a device backend: every stage keeps its arrays on the device, a block crosses
over once (raw samples in) and back once (timestream, IQ, trigger candidates, spectra out).

Run on the strict test backend (numpy underneath, cupy's rules at the host boundary), so a hidden
host round-trip anywhere in the MKID or TES pipeline raises here, on any machine; the events must
be those of the CPU path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.pipeline import MKIDPipeline, TESPipeline
from cryodaq.backend import get_backend, numpy_backend
from cryodaq.config import PipelineConfig, TriggerConfig
from cryodaq.dsp import IQCalibration
from cryodaq.readout.blocks import Block

PINNED = Path(__file__).resolve().parents[1] / "data" / "pinned_streams.npz"  # seeded simulator streams
MKID_CONFIG = PipelineConfig(n_channels=16, n_taps=8, decimation=2,
                             trigger=TriggerConfig(threshold_sigma=5.0, holdoff_s=0.004, record_s=0.004,
                                                   presamples_s=0.001))
TES_CONFIG = PipelineConfig(trigger=TriggerConfig(threshold_sigma=6.0, holdoff_s=0.005, polarity=-1,
                                                  record_s=0.01, presamples_s=0.002))


@pytest.fixture(scope="module")
def streams() -> dict[str, np.ndarray]:
    with np.load(PINNED) as f:
        return {k: f[k] for k in ("mkid_adc", "mkid_fs", "mkid_tone_if", "tes_adc", "tes_fs", "tes_cpa")}


def _blocks(adc: np.ndarray, fs: float, block: int, gap_at: int = 20) -> list[Block]:
    """The stream in blocks with a gap of 3 blocks cut out at ``gap_at``."""
    t0 = 1_700_000_000_000_000_000
    return [Block(first, t0 + round(first * 1e9 / fs), adc[first:first + block], k != gap_at + 3)
            for k, first in enumerate(range(0, len(adc), block)) if not gap_at <= k < gap_at + 3]


def _mkid(backend, streams, calibration: bool) -> MKIDPipeline:
    n = len(streams["mkid_tone_if"])
    cal = IQCalibration(np.full(n, 0.01 + 0.02j), np.linspace(0.1, 0.5, n), np.full(n, 0.3), -np.ones(n)) \
        if calibration else None
    p = MKIDPipeline(MKID_CONFIG, fs=float(streams["mkid_fs"]), tone_if_hz=streams["mkid_tone_if"],
                     backend=backend, calibration=cal)
    p.monitor_spectra(nperseg=64, interval_s=0.05)
    return p


def _tes(backend, streams) -> TESPipeline:
    p = TESPipeline(TES_CONFIG, fs=float(streams["tes_fs"]), counts_per_ampere=streams["tes_cpa"], backend=backend)
    p.monitor_spectra(nperseg=256, interval_s=0.1)
    return p


def _run(pipeline, blocks: list[Block]) -> tuple[list, list[tuple[int, int]]]:
    """Outputs, and per block after calibration the (to_device, to_host) crossings it cost."""
    log = pipeline.backend.transfers
    outs, per_block = [], []
    for b in blocks:
        calibrated = pipeline.thresholds is not None
        before = log.counts()
        outs += pipeline.process(b)
        if calibrated:
            per_block.append((log.counts()[0] - before[0], log.counts()[1] - before[1]))
    outs += pipeline.finish()
    return outs, per_block


def _same_outputs(got: list, want: list) -> None:
    cols_g = [o.event_columns() for o in got]
    cols_w = [o.event_columns() for o in want]
    for name in ("sample_index", "t", "channel", "flags"):
        np.testing.assert_array_equal(np.concatenate([c[name] for c in cols_g]),
                                      np.concatenate([c[name] for c in cols_w]), err_msg=name)
    for name in ("amplitude", "baseline", "records"):
        np.testing.assert_allclose(np.concatenate([c[name] for c in cols_g]),
                                   np.concatenate([c[name] for c in cols_w]), rtol=1e-4, atol=1e-6, err_msg=name)
    data_g = np.concatenate([o.data for o in got if len(o.sample_index)])
    data_w = np.concatenate([o.data for o in want if len(o.sample_index)])
    np.testing.assert_allclose(data_g, data_w, rtol=1e-4, atol=1e-5)
    spectra_g = [o.spectrum for o in got if o.spectrum is not None]
    spectra_w = [o.spectrum for o in want if o.spectrum is not None]
    assert len(spectra_g) == len(spectra_w) >= 2
    for (tg, fg, pg), (tw, fw, pw) in zip(spectra_g, spectra_w):
        assert tg == tw and np.array_equal(fg, fw) and pg.shape == pw.shape
        np.testing.assert_allclose(pg, pw, rtol=1e-3, atol=1e-12)


@pytest.mark.parametrize("calibration", [False, True], ids=["baseline", "given"])
def test_mkid_pipeline_is_device_resident(streams, calibration: bool) -> None:
    strict = get_backend("strict")
    blocks = _blocks(streams["mkid_adc"], float(streams["mkid_fs"]), 4096)
    got, per_block = _run(_mkid(strict, streams, calibration), blocks)
    want, _ = _run(_mkid(numpy_backend(), streams, calibration), blocks)
    assert len(per_block) > 10
    assert set(per_block) == {(1, 1)}, "a block crossed more than once each way"
    assert all(isinstance(o.data, np.ndarray) and (o.iq is None or isinstance(o.iq, np.ndarray)) for o in got)
    assert sum(len(o.events) for o in got) >= 20
    _same_outputs(got, want)


@pytest.mark.gpu
def test_cupy_pipelines_match_the_strict_backend(streams) -> None:
    """On a GPU the same device code path runs on cupy: same events, one crossing each way per block.
    (Compared with the strict backend, which shares the code path and needs no CPU kernels.)"""
    pytest.importorskip("cupy")
    from cryodaq.backend import gpu_available

    if not gpu_available():
        pytest.skip("cupy imports but no CUDA device answers")
    gpu, strict = get_backend("cupy"), get_backend("strict")
    mkid = _blocks(streams["mkid_adc"], float(streams["mkid_fs"]), 4096)
    tes = _blocks(streams["tes_adc"], float(streams["tes_fs"]), 512)
    for make, blocks in ((lambda b: _mkid(b, streams, True), mkid), (lambda b: _mkid(b, streams, False), mkid),
                         (lambda b: _tes(b, streams), tes)):
        got, per_block = _run(make(gpu), blocks)
        want, _ = _run(make(strict), blocks)
        assert len(per_block) > 10 and set(per_block) == {(1, 1)}
        _same_outputs(got, want)


def test_tes_pipeline_is_device_resident(streams) -> None:
    strict = get_backend("strict")
    blocks = _blocks(streams["tes_adc"], float(streams["tes_fs"]), 512)
    got, per_block = _run(_tes(strict, streams), blocks)
    want, _ = _run(_tes(numpy_backend(), streams), blocks)
    assert len(per_block) > 10 and set(per_block) == {(1, 1)}
    assert sum(len(o.events) for o in got) >= 20
    _same_outputs(got, want)
