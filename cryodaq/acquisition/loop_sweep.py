"""IQ-loop calibration sweep: step the tone comb across the resonances, fit each loop's circle.

A notch resonator's S21 traces a circle in the IQ plane as the tone is detuned. Phase
measured about the IQ-plane origin (:meth:`~cryodaq.dsp.iq.IQCalibration.from_baseline`)
saturates when the origin lies outside the loop (high-Ql/Qc resonators: the loop diameter
is most of |S21| off resonance), so photon lines of different energy give the same pulse
height. Real MKID readouts measure the phase about the loop centre instead; the centre
comes from a short frequency sweep of every tone around its operating point, done here
with the board's own stream and channelizer (so the calibration is in the same IQ units,
gains and phases as the run that follows):

1. :func:`measure_iq_loops` — with the stream running to a receiver of its own, set
   every tone to ``tone + δ`` for each offset δ, skip data older than the change plus
   ``settle_s``, channelize ``dwell_s`` of data for the shifted IFs and keep a robust
   mean (median of I and of Q: photon pulses do not bias it) of each tone's IQ.
   The original tones are restored and the stream stopped at the end (also on error).
2. :func:`loop_calibration` — per tone, :func:`~cryodaq.dsp.resonator.circle_fit` of the
   sweep points gives the centre and radius; the rotation puts the operating point
   (offset 0) at phase 0.

Sign convention: phase is ``angle((iq - centre) exp(-i rotation))``. A photon lowers
the resonance frequency, so the fixed tone sits *above* the shifted resonance, which
moves the IQ point the same way as a positive detuning δ does. For a notch loop traversed
clockwise with frequency (as S21 = 1 - r/(1 + 2jQl x) is), a positive δ gives a negative
phase: photon pulses are negative about the loop centre. :func:`loop_calibration` flips
the rotation sense (``phase_sign``) so that pulses come out positive, matching the
pipeline's ``polarity: 1``; the sense is measured from the sweep itself (the sign of the
phase slope vs. frequency), not assumed.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.acquisition.receiver import Block, UDPReceiver
from cryodaq.backend import Backend, numpy_backend
from cryodaq.dsp import IQCalibration, ToneChannelizer
from cryodaq.dsp.resonator import circle_fit
from cryodaq.errors import InstrumentError
from cryodaq.station.config import CalibrationConfig, PipelineConfig

__all__ = ["LoopSweep", "calibrate_board", "loop_calibration", "measure_iq_loops", "write_loop_sweep"]

log = logging.getLogger(__name__)


@dataclass
class LoopSweep:
    """IQ of every tone at each common frequency offset.

    ``iq[i, k]`` is tone ``k`` at RF ``tones_rf_hz[k] + offsets_hz[i]`` (complex128, the
    pipeline's IQ units); ``duration_s`` is the wall time the sweep took.
    """

    offsets_hz: np.ndarray
    iq: np.ndarray
    tones_rf_hz: np.ndarray
    duration_s: float = 0.0

    @property
    def n_tones(self) -> int:
        return int(self.iq.shape[1])

    def operating_index(self) -> int:
        """Row of the offset-0 point (the tones as the run uses them)."""
        i = int(np.argmin(np.abs(self.offsets_hz)))
        if self.offsets_hz[i] != 0:
            raise ValueError(f"loop sweep has no offset-0 point (offsets {self.offsets_hz.tolist()}); "
                             "use an odd number of points")
        return i


def sweep_offsets(span_hz: float, points: int) -> np.ndarray:
    """``points`` offsets from ``-span_hz`` to ``+span_hz`` (odd ``points``: 0 is one of them)."""
    return np.linspace(-float(span_hz), float(span_hz), int(points))


def measure_iq_loops(
    board: Any,
    config: PipelineConfig,
    *,
    fs: float,
    tone_if_hz: np.ndarray,
    backend: Backend | None = None,
    span_hz: float,
    points: int,
    dwell_s: float,
    settle_s: float,
    host: str = "127.0.0.1",
    timeout_s: float = 5.0,
) -> LoopSweep:
    """Sweep every tone of ``board`` (an MKID readout board, not streaming) over ``±span_hz``.

    ``tone_if_hz``: the operating tones' IFs (RF - LO) as the pipeline uses them. Tone
    changes go through ``board.tone_frequencies`` (station safety limits apply). Raises
    :class:`~cryodaq.errors.InstrumentError` naming the board if a step gets no data within
    ``timeout_s``.
    """
    backend = backend or numpy_backend()
    name = str(getattr(board, "name", board))
    address = getattr(board, "address", None)
    if bool(board.streaming()):
        raise InstrumentError(name, address, "is already streaming; the loop sweep needs the stream to itself")
    tones_rf = np.asarray(board.tone_frequencies(), dtype=float)
    tone_if = np.asarray(tone_if_hz, dtype=float)
    if tones_rf.shape != tone_if.shape:
        raise ValueError(f"loop sweep of {name!r}: {tone_if.size} tone IFs given, the board has {tones_rf.size} tones")
    offsets = sweep_offsets(span_hz, points)
    iq = np.empty((offsets.size, tones_rf.size), np.complex128)
    started = time.monotonic()
    receiver = UDPReceiver(host, 0, packets_per_block=1, queue_blocks=4096).start()
    try:
        board.start_stream(receiver.host, receiver.port)
        try:
            for i, delta in enumerate(offsets):
                board.tone_frequencies(tones_rf + delta)
                not_before_ns = time.time_ns() + int(round(settle_s * 1e9))
                channelizer = ToneChannelizer(tone_if + delta, fs, config.n_channels, config.n_taps,
                                              config.decimation, config.oversampling, backend=backend,
                                              window=config.window)
                z = _dwell(receiver, channelizer, not_before_ns, dwell_s, timeout_s, name, address)
                iq[i] = np.median(z.real, axis=0) + 1j * np.median(z.imag, axis=0)
        finally:
            try:
                board.tone_frequencies(tones_rf)
            finally:
                board.stop_stream()
    finally:
        receiver.stop(drain_s=0.05)
    duration = time.monotonic() - started
    log.info("IQ loop sweep of %d tones, %d points over ±%.3g Hz: %.2f s", tones_rf.size, offsets.size,
             span_hz, duration)
    return LoopSweep(offsets, iq, tones_rf, duration)


def _dwell(receiver: UDPReceiver, channelizer: ToneChannelizer, not_before_ns: int, dwell_s: float,
           timeout_s: float, name: str, address: Any) -> np.ndarray:
    """``dwell_s`` of channelized IQ from contiguous blocks that start at or after ``not_before_ns``.

    The channelizer is reset to the first kept block's sample, so its outputs (only complete
    PFB and low-pass windows give any) contain no data from before the tone change. A gap
    starts the dwell over.
    """
    n_want = max(1, int(round(dwell_s * channelizer.output_rate)))
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


def loop_calibration(sweep: LoopSweep, operating_iq: np.ndarray | None = None) -> IQCalibration:
    """Per-tone circle centre and radius from the sweep; rotation puts the operating point at phase 0.

    ``operating_iq`` (n_tones,) overrides the sweep's offset-0 point as the operating point.
    Phase increases as the resonance moves down in frequency (photon pulses positive): see
    the module docstring.
    """
    z_op = sweep.iq[sweep.operating_index()] if operating_iq is None else np.asarray(operating_iq, complex)
    n = sweep.n_tones
    centre = np.empty(n, complex)
    radius = np.empty(n)
    rotation = np.empty(n)
    sign = np.empty(n)
    for k in range(n):
        centre[k], radius[k], _ = circle_fit(sweep.iq[:, k])
        # sense of rotation with frequency: unwrapped angle about the centre vs. offset
        angle = np.unwrap(np.angle(sweep.iq[:, k] - centre[k]))
        slope = np.polyfit(sweep.offsets_hz, angle, 1)[0]
        sign[k] = 1.0 if slope > 0 else -1.0
        rotation[k] = np.angle(z_op[k] - centre[k])
    return IQCalibration(centre, rotation, radius, sign)


def calibrate_board(board: Any, config: PipelineConfig, backend: Backend | None = None,
                    host: str = "127.0.0.1") -> tuple[LoopSweep, IQCalibration] | None:
    """The loop sweep and calibration ``config.calibration`` asks for, for an MKID readout board.

    None for ``method: baseline`` or a board that is not an MKID readout board (the pipeline
    then calibrates itself from its first data).
    """
    from cryodaq.instruments import MKIDReadoutBoard

    cal: CalibrationConfig = config.calibration
    if cal.method != "loop_sweep" or not isinstance(board, MKIDReadoutBoard):
        return None
    sweep = measure_iq_loops(board, config, fs=float(board.sample_rate()), tone_if_hz=board.tone_if_frequencies(),
                             backend=backend, span_hz=cal.span_hz, points=cal.points, dwell_s=cal.dwell_s,
                             settle_s=cal.settle_s, host=host)
    return sweep, loop_calibration(sweep)


def write_loop_sweep(writer: Any, sweep: LoopSweep, calibration: IQCalibration, name: str = "iq_loop") -> None:
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
               "phase_sign": calibration.sign.tolist()},
        array_attrs={"offset_hz": {"units": "Hz"}, "tone_frequency_hz": {"units": "Hz"}},
    )
