"""Pinned behaviour: the MKID and TES pipelines, run over stored seeded ADC streams, give the stored events.

``tests/data/pinned_streams.npz`` holds two short simulator streams (seeded, fixed clock) and
the events the pipelines found in them when the pin was made. Refactoring must not change a
single event. Regenerate only for a deliberate change of the pipelines' output (and say why
in the commit): ``python tests/acquisition/test_pipeline_pinned.py --regenerate``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.pipeline import MKIDPipeline, TESPipeline
from cryodaq.readout.blocks import Block
from cryodaq.dsp import IQCalibration
from cryodaq.config import PipelineConfig, TriggerConfig

PINNED = Path(__file__).resolve().parents[1] / "data" / "pinned_streams.npz"

# Small worlds, so the stored streams stay small: 3 resonators at 256 kS/s, 2 TES channels.
MKID_WORLD = {"seed": 11, "fs_hz": 256_000.0,
              "feedline": {"if_bins": [2, 4, 6], "pfb_channels": 16, "random_offset_hz": 2000.0},
              "photons": {"rate_hz": 150.0}, "noise": {"tls_decimation": 64}}
TES_WORLD = {"seed": 12, "tes": {"enabled": True, "n_channels": 2, "rate_hz": 40.0}}
SECONDS = 0.6
BLOCK = 4096  # samples per block; one gap is cut out of each stream at GAP_AT
GAP_AT, GAP_LEN = 20, 3  # block index and length in blocks

MKID_CONFIG = PipelineConfig(n_channels=16, n_taps=8, decimation=2,
                             trigger=TriggerConfig(threshold_sigma=5.0, holdoff_s=0.004, record_s=0.004,
                                                   presamples_s=0.001))
TES_CONFIG = PipelineConfig(trigger=TriggerConfig(threshold_sigma=6.0, holdoff_s=0.005, polarity=-1,
                                                  record_s=0.01, presamples_s=0.002))
COLUMNS = ("sample_index", "channel", "amplitude", "baseline", "flags", "t", "t_err", "records")


def _blocks(adc: np.ndarray, fs: float, block: int) -> list[Block]:
    """The stream cut into blocks with one gap; times from a fixed epoch at the sample rate."""
    out = []
    t0 = 1_700_000_000_000_000_000
    for k, first in enumerate(range(0, len(adc), block)):
        if GAP_AT <= k < GAP_AT + GAP_LEN:
            continue
        out.append(Block(first, t0 + round(first * 1e9 / fs), adc[first:first + block], k != GAP_AT + GAP_LEN))
    return out


def _run(pipeline, blocks: list[Block]) -> dict[str, np.ndarray]:
    outs = []
    for b in blocks:
        outs += pipeline.process(b)
    outs += pipeline.finish()
    cols: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    stream = [o.data for o in outs if len(o.sample_index)]
    for o in outs:
        for c, v in o.event_columns().items():
            cols[c].append(np.asarray(v))
    result = {c: np.concatenate(v) for c, v in cols.items() if v}
    result["stream_sum"] = np.array([np.concatenate(stream).astype(np.float64).sum(axis=0)])
    result["stream_len"] = np.array([sum(len(s) for s in stream)])
    return result


def results(data: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    fs, tone_if = float(data["mkid_fs"]), data["mkid_tone_if"]
    mkid_blocks = _blocks(data["mkid_adc"], fs, BLOCK)
    baseline = MKIDPipeline(MKID_CONFIG, fs=fs, tone_if_hz=tone_if)
    n = len(tone_if)
    given = IQCalibration(np.full(n, 0.01 + 0.02j), np.linspace(0.1, 0.5, n), np.full(n, 0.3), np.ones(n))
    loop = MKIDPipeline(MKID_CONFIG, fs=fs, tone_if_hz=tone_if, calibration=given)
    tes = TESPipeline(TES_CONFIG, fs=float(data["tes_fs"]), counts_per_ampere=data["tes_cpa"])
    tes_blocks = _blocks(data["tes_adc"], float(data["tes_fs"]), 512)
    return {"mkid_baseline": _run(baseline, mkid_blocks), "mkid_given": _run(loop, mkid_blocks),
            "tes": _run(tes, tes_blocks)}


def _load() -> dict[str, np.ndarray]:
    if not PINNED.exists():
        pytest.fail(f"{PINNED} is missing (regenerate: python {Path(__file__).name} --regenerate)")
    with np.load(PINNED) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("name", ["mkid_baseline", "mkid_given", "tes"])
def test_pipeline_events_are_pinned(name: str) -> None:
    stored = _load()
    got = results(stored)[name]
    expected = {k.split("__", 1)[1]: v for k, v in stored.items() if k.startswith(f"{name}__")}
    assert len(expected["channel"]) >= 20, "the pinned stream should hold a fair number of events"
    assert sorted(got) == sorted(expected)
    for col, want in expected.items():
        np.testing.assert_array_equal(got[col], want, err_msg=f"{name}: column {col!r} changed")


def _regenerate() -> None:
    from sim_instruments.world.world import World

    mkid_world = World(MKID_WORLD, clock=lambda: 0.0)
    mkid_adc = mkid_world.new_adc_stream().block(0, int(SECONDS * mkid_world.config.fs_hz))
    tes_world = World(TES_WORLD, clock=lambda: 0.0)
    assert tes_world.tes is not None
    tes_world.tes.set_bias(np.arange(tes_world.tes.n_channels), 3.5e-4)  # in the transition, as demo_tes
    tes_adc = tes_world.tes.new_stream().block(0, int(SECONDS * tes_world.tes.config.fs_hz))
    data = {"mkid_adc": mkid_adc, "tes_adc": tes_adc,
            "tes_cpa": np.asarray(tes_world.tes.counts_per_ampere(), dtype=float),
            "mkid_fs": np.float64(mkid_world.config.fs_hz), "tes_fs": np.float64(tes_world.tes.config.fs_hz),
            "mkid_tone_if": np.asarray(mkid_world.readout_state().tone_freqs_hz - mkid_world.config.lo_hz)}
    out = dict(data)
    for name, cols in results(data).items():
        out.update({f"{name}__{col}": v for col, v in cols.items()})
        print(name, "events:", len(cols["channel"]), "per channel:", np.bincount(cols["channel"]))
    PINNED.parent.mkdir(exist_ok=True)
    np.savez_compressed(PINNED, **out)
    print(f"wrote {PINNED} ({PINNED.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    if "--regenerate" in sys.argv:
        _regenerate()
