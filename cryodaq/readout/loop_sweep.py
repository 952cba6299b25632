"""IQ-loop calibration sweep: step the tone comb across the resonances, measure each loop.

A notch resonator's S21 traces a circle in the IQ plane as the tone is detuned. Phase
measured about the IQ-plane origin (:meth:`~cryodaq.dsp.iq.IQCalibration.from_baseline`)
saturates when the origin lies outside the loop (high-Ql/Qc resonators: the loop diameter
is most of |S21| off resonance), so photon lines of different energy give the same pulse
height. Real MKID readouts measure the phase about the loop centre instead; the centre
comes from a short frequency sweep of every tone around its operating point, done here
with the source's own stream and a channelizer like the pipeline's (so the calibration is
in the same IQ units, gains and phases as the run that follows):

1. :func:`measure_iq_loops` — with the stream running to a receiver of its own
   (:func:`~cryodaq.readout.receive.receiving`), set every tone to ``tone + δ`` for each
   offset δ (``source.configure(tone_frequencies=...)``: station safety limits apply), skip
   data older than the change plus ``settle_s``, channelize ``dwell_s`` of data for the
   shifted IFs and keep a robust mean (median of I and of Q: photon pulses do not bias it)
   of each tone's IQ. The original tones are restored and the stream stopped at the end
   (also on error).
2. :func:`~cryodaq.dsp.iqcal.loop_calibration` — per tone, a circle fit of the sweep points
   gives the centre and radius; the rotation puts the operating point (offset 0) at phase 0,
   and the sign makes photon pulses positive (the convention is written down in
   :mod:`cryodaq.dsp.iqcal`).
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Protocol

import numpy as np

from cryodaq.backend import Backend, numpy_backend
from cryodaq.config import CalibrationConfig, PipelineConfig
from cryodaq.dsp.channelizer import ToneChannelizer
from cryodaq.dsp.iq import IQCalibration
from cryodaq.dsp.iqcal import LoopSweep, loop_calibration, sweep_offsets
from cryodaq.errors import InstrumentError
from cryodaq.readout.blocks import Block
from cryodaq.readout.receive import receiving, source_address
from cryodaq.readout.source import BlockReceiver, ReadoutSource, ToneSweepSource
from cryodaq.readout.tone_sweep import calibrate_tones

__all__ = ["calibrate_source", "measure_iq_loops", "write_loop_sweep"]

log = logging.getLogger(__name__)


class SweepStore(Protocol):
    """Where :func:`write_loop_sweep` puts the sweep: a run writer (:class:`~cryodaq.storage.RunWriter`)."""

    def write_sweep(self, name: str, coords: dict[str, np.ndarray], data: dict[str, np.ndarray], *,
                    attrs: dict | None = None, array_attrs: dict | None = None) -> object: ...


def measure_iq_loops(
    source: ReadoutSource,
    config: PipelineConfig,
    *,
    backend: Backend | None = None,
    span_hz: float,
    points: int,
    dwell_s: float,
    settle_s: float,
    host: str = "127.0.0.1",
    timeout_s: float = 15.0,
) -> LoopSweep:
    """Sweep every tone of ``source`` (a tone-comb ``adc`` stream, not streaming) over ``±span_hz``.

    Tone changes go through ``source.configure(tone_frequencies=...)`` (station safety limits
    apply). Raises :class:`~cryodaq.errors.InstrumentError` naming the source if it already
    streams or a step gets no data within ``timeout_s``.
    """
    backend = backend or numpy_backend()
    stream = source.describe()
    if stream.kind != "adc" or "tone_frequency_hz" not in stream.channel_coords:
        raise ValueError(f"loop sweep of {source.name!r}: needs a tone-comb ADC stream, got a {stream.kind!r} stream")
    tones_rf = np.asarray(stream.channel_coords["tone_frequency_hz"], dtype=float)
    tone_if = np.asarray(stream.channel_coords["tone_if_hz"], dtype=float)
    offsets = sweep_offsets(span_hz, points)
    iq = np.empty((offsets.size, tones_rf.size), np.complex128)
    started = time.monotonic()
    with receiving(source, host=host, packets_per_block=1, queue_blocks=4096, drain_s=0.05,
                   purpose="the IQ-loop sweep") as receiver:
        try:
            for i, delta in enumerate(offsets):
                source.configure(tone_frequencies=tones_rf + delta)
                not_before_ns = time.time_ns() + int(round(settle_s * 1e9))
                channelizer = ToneChannelizer(tone_if + delta, stream.sample_rate_hz, config.n_channels,
                                              config.n_taps, config.decimation, config.oversampling,
                                              backend=backend, window=config.window)
                z = _dwell(receiver, channelizer, not_before_ns, dwell_s, timeout_s, source)
                iq[i] = np.median(z.real, axis=0) + 1j * np.median(z.imag, axis=0)
        finally:
            source.configure(tone_frequencies=tones_rf)
    duration = time.monotonic() - started
    log.info("IQ loop sweep of %d tones, %d points over ±%.3g Hz: %.2f s", tones_rf.size, offsets.size,
             span_hz, duration)
    return LoopSweep(offsets, iq, tones_rf, duration)


def _dwell(receiver: BlockReceiver, channelizer: ToneChannelizer, not_before_ns: int, dwell_s: float,
           timeout_s: float, source: ReadoutSource) -> np.ndarray:
    """``dwell_s`` of channelized IQ from contiguous blocks that start at or after ``not_before_ns``.

    The channelizer is reset to the first kept block's sample, so its outputs (only complete
    PFB and low-pass windows give any) contain no data from before the tone change. A gap
    starts the dwell over.
    """
    n_want = max(1, int(round(dwell_s * channelizer.output_rate)))
    name, address = source.name, source_address(source)
    parts: list[np.ndarray] = []
    got = 0
    started = False
    deadline = time.monotonic() + timeout_s
    while got < n_want:
        left = deadline - time.monotonic()
        if left <= 0:
            raise InstrumentError(name, address, f"loop sweep: {got} of {n_want} IQ samples within {timeout_s:g} s")
        try:
            block: Block | None = receiver.blocks.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        if block is None:
            raise InstrumentError(name, address, "loop sweep: the receiver stopped")
        if block.n_samples == 0 or block.t_ns < not_before_ns:
            continue
        if not started or not block.continuous:
            channelizer.reset(block.first_sample)
            parts, got, started = [], 0, True
        samples = block.samples if block.samples.ndim == 1 else block.samples[:, 0]
        out = channelizer.backend.to_numpy(channelizer.process(channelizer.backend.asarray(samples)))
        if out.shape[0]:
            parts.append(out)
            got += out.shape[0]
    return np.concatenate(parts)[:n_want].astype(np.complex128)


def calibrate_source(source: ReadoutSource, config: PipelineConfig, backend: Backend | None = None,
                     host: str = "127.0.0.1") -> tuple[LoopSweep, IQCalibration] | None:
    """The calibration sweep ``config.calibration`` asks for, and the IQ calibration it gives.

    A source that measures its own tones (a :class:`~cryodaq.readout.source.ToneSweepSource`, e.g. a
    CRS) sweeps them itself, searching for resonators first when ``calibration.search`` says so
    (:func:`~cryodaq.readout.tone_sweep.calibrate_tones`); a tone comb on an ADC is swept through
    its stream and a channelizer (:func:`measure_iq_loops`). None for ``method: baseline`` or a
    stream that is no tone comb (the pipeline then calibrates itself from its first data).
    Raises ValueError for a method or search the source cannot do.
    """
    cal: CalibrationConfig = config.calibration
    if cal.method == "baseline":
        if cal.search is not None:
            raise ValueError("calibration.search needs a sweep: method loop_sweep or resonator_fit")
        return None
    if isinstance(source, ToneSweepSource):
        return calibrate_tones(source, cal)
    if cal.method == "resonator_fit" or cal.search is not None:
        what = "method resonator_fit" if cal.method == "resonator_fit" else "calibration.search"
        raise ValueError(f"{source.name!r}: {what} needs a board that measures its own tones (e.g. a CRS)")
    if source.describe().kind != "adc":
        return None
    sweep = measure_iq_loops(source, config, backend=backend, span_hz=cal.span_hz, points=cal.points,
                             dwell_s=cal.dwell_s, settle_s=cal.settle_s, host=host)
    return sweep, loop_calibration(sweep)


def write_loop_sweep(writer: SweepStore, sweep: LoopSweep, calibration: IQCalibration, name: str = "iq_loop") -> None:
    """Store the sweep in a run as ``sweeps/<name>/`` (dims offset_hz, channel; arrays i, q)."""
    writer.write_sweep(
        name,
        {"offset_hz": sweep.offsets_hz, "channel": np.arange(sweep.n_tones, dtype=np.int32)},
        {"i": sweep.iq.real, "q": sweep.iq.imag,
         "tone_frequency_hz": np.broadcast_to(sweep.tones_rf_hz + sweep.offsets_hz[:, None], sweep.iq.shape)},
        attrs={"kind": "iq_loop_calibration", "duration_s": sweep.duration_s,
               "tones_rf_hz": sweep.tones_rf_hz.tolist(),
               "centre_i": calibration.centre.real.tolist(), "centre_q": calibration.centre.imag.tolist(),
               "radius": calibration.radius.tolist(), "rotation_rad": calibration.rotation.tolist(),
               "phase_sign": calibration.sign.tolist(), **sweep.detail},
        array_attrs={"offset_hz": {"units": "Hz"}, "tone_frequency_hz": {"units": "Hz"}},
    )
