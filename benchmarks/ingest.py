"""End-to-end ingest: the highest ADC rate the live path sustains with zero drops (prints figures; not a test).

A sender process replays pre-generated readout packets (``cryodaq.wire.packet``, 8 KB payloads
as the simulated boards send) over loopback UDP at a set rate into the real path: the
``receiving()`` dance on a :class:`~cryodaq.readout.source.ReadoutSource` (:class:`ReplaySource`
below, whose "board" is the sender) -> :class:`~cryodaq.readout.udp_receiver.UDPReceiver` ->
:class:`~cryodaq.acquisition.workers.StreamWorkers` (the session's pipeline and sink threads) ->
the pipeline for the stream (``pipeline_for_source``) -> :class:`~cryodaq.acquisition.sinks.SinkFanout`
of the Zarr run writer and the live publisher. The rate ramps up in short probes, is refined
by bisection, and the best rate is then held for ``--hold`` seconds (>= 30 by default); it
counts as sustained when no packet was lost, no block dropped and the receiver's queue stayed
bounded (its fill at the end no higher than a quarter of its size). Reported per configuration:
MS/s and MB/s of ADC data (int16: 2 bytes per sample per channel), the CPU % of the cryodaq
process (receiver, DSP, writer, publisher; the sender's own CPU apart), and the CPU seconds per
second of each of its threads (``--profile`` adds a cProfile of the pipeline's ``process``).
For the CRS configuration the samples are complex IQ samples (one per channel per packet) x
channels, and the MB/s are of packet payload (whole 8240-byte datagrams: 8 B of int32 I/Q per
channel plus the header and timestamp).

    python benchmarks/ingest.py [--json FILE] [--configs mkid256,tes64] [--hold 30] [--probe 4]

Configurations: the demo MKID pipeline (``stations/demo_mkid.yaml`` settings) at 8, 256 and 2048
tones, PFB bins scaled to fit (64, 1024, 8192 channels; nominal ADC rate scaled with them so the
per-tone output stays at the demo's 16 kHz), the TES pipeline at 64 and 512 channels, and
pre-channelized CRS IQ at 1024 channels (``crs1024``: one module, long packets, version 5, 8240 bytes,
``cryodaq.wire.crs``; the sender replays CRS packets unicast to loopback, received by the real
:class:`~cryodaq.readout.crs_receiver.CRSReceiver` (unicast only: no multicast group joined), processed
by the ``IQPipeline`` with a given IQ calibration (each channel's loop centre, radius and operating
point, as a calibration sweep gives them); its nominal rate is the board's fastest, decimation stage
0, 38 147 samples/s per channel, which sets the pipeline's time constants).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from cryodaq.acquisition.pipeline import StreamPipeline, pipeline_for_source
from cryodaq.acquisition.sinks import RunWriterSink, SessionStats, SinkFanout, StreamInfo
from cryodaq.acquisition.workers import StreamWorkers
from cryodaq.backend import get_backend
from cryodaq.config import CalibrationConfig, PipelineConfig, TriggerConfig
from cryodaq.dsp.iq import IQCalibration
from cryodaq.live.publisher import LivePublisher
from cryodaq.readout.crs_receiver import CRSReceiver
from cryodaq.readout.receive import receiving
from cryodaq.readout.source import ReadoutSource, StreamDescription
from cryodaq.readout.udp_receiver import UDPReceiver
from cryodaq.storage import RunWriter
from cryodaq.wire import crs as crs_wire
from cryodaq.wire import packet as pk

DEMO_TRIGGER = TriggerConfig(threshold_sigma=6.0, holdoff_s=0.004, polarity=1, baseline_s=0.002, record_s=0.004,
                             presamples_s=0.001)
TES_TRIGGER = TriggerConfig(threshold_sigma=8.0, holdoff_s=0.005, polarity=-1, baseline_s=0.002, record_s=0.010,
                            presamples_s=0.002)
LOOP = 1 << 21  # samples per stream of pre-generated data, replayed in a loop
CRS_LOOP = 2048  # CRS frames (one long packet each) pre-generated, replayed in a loop with new seq and stamps
CRS_STAGE = 0  # the nominal decimation stage of the CRS configuration (its fastest: 38 147 Hz)


@dataclass(frozen=True)
class Config:
    name: str
    kind: str  # "adc" (MKID tone comb), "channels" (TES) or "iq" (CRS, channelized by the board)
    n: int  # tones or channels
    fs: float  # nominal sample rate (sets the pipeline's time constants; the replay rate is what varies)
    pipeline: PipelineConfig
    packet_samples: int  # samples per stream per packet
    bytes_per_sample: float = 2.0  # on the wire, per sample per stream (int16; CRS: a datagram / its channels)

    @property
    def streams(self) -> int:
        """Streams the sample rate is per: one ADC, or every channel."""
        return 1 if self.kind == "adc" else self.n


def _mkid(n_tones: int, m: int) -> Config:
    return Config(f"mkid{n_tones}", "adc", n_tones, 2.048e6 * m / 64,
                  PipelineConfig(n_channels=m, n_taps=8, decimation=2, block_packets=16 if m <= 64 else 64,
                                 queue_blocks=256, trigger=DEMO_TRIGGER,
                                 calibration=CalibrationConfig(method="baseline")), 4096)


def _tes(n_ch: int) -> Config:
    return Config(f"tes{n_ch}", "channels", n_ch, 100e3,
                  PipelineConfig(block_packets=64, queue_blocks=256, trigger=TES_TRIGGER), max(1, 4096 // n_ch))


def _crs(n_ch: int) -> Config:
    return Config(f"crs{n_ch}", "iq", n_ch, crs_wire.sample_rate_hz(CRS_STAGE),
                  PipelineConfig(block_packets=256, queue_blocks=128, trigger=DEMO_TRIGGER), 1,
                  crs_wire.LONG_SIZE / crs_wire.LONG_CHANNELS)


CONFIGS = {c.name: c for c in (_mkid(8, 64), _mkid(256, 1024), _mkid(2048, 8192), _tes(64), _tes(512),
                               _crs(1024))}


# --- the data -----------------------------------------------------------------------------
def tone_ifs(cfg: Config) -> np.ndarray:
    """Tones spread over the band, about every (bins / tones) bins, a few kHz off their bin centres."""
    m = cfg.pipeline.n_channels
    bins = np.linspace(4, m // 2 - 4, cfg.n).round()
    rng = np.random.default_rng(5)
    f = bins * cfg.fs / m + rng.uniform(-0.2, 0.2, cfg.n) * cfg.fs / m
    return np.round(f * LOOP / cfg.fs) * cfg.fs / LOOP  # whole cycles per loop: the comb loops seamlessly


def make_samples(cfg: Config, seed: int = 1) -> np.ndarray:
    """``LOOP`` samples: a tone comb with phase pulses on some tones (MKID) or channels of noise with
    negative exponential pulses (TES), as int16 (LOOP,) or (LOOP, n)."""
    rng = np.random.default_rng(seed)
    out_rate = cfg.fs / (cfg.pipeline.n_channels * cfg.pipeline.decimation) if cfg.kind == "adc" else cfg.fs
    tau = 5 / out_rate * cfg.fs  # pulse decay, ADC samples
    if cfg.kind == "adc":
        f = tone_ifs(cfg)
        amp = 12000.0 / np.sqrt(cfg.n)
        spec = np.zeros(LOOP // 2 + 1, np.complex128)
        phase0 = rng.uniform(0, 2 * np.pi, cfg.n)
        k = np.rint(f * LOOP / cfg.fs).astype(int)
        spec[k] = amp / 2 * LOOP * np.exp(1j * phase0)
        x = np.fft.irfft(spec, LOOP)
        width = int(8 * tau)
        for c in range(min(cfg.n, 32)):  # phase pulses of 0.3 rad on the first tones
            for start in rng.integers(0, LOOP - width, max(1, int(LOOP / cfg.fs * 50))):
                n = np.arange(start, start + width)
                arg = 2 * np.pi * f[c] * n / cfg.fs + phase0[c]
                x[n] += amp * (np.cos(arg + 0.3 * np.exp(-(n - start) / tau)) - np.cos(arg))
        x += rng.normal(0, 30, LOOP)
        return np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    x = rng.normal(0, 2.0, (LOOP, cfg.n)).astype(np.float32)
    shape = (np.exp(-np.arange(int(8 * tau)) / tau) - np.exp(-np.arange(int(8 * tau)) / (tau / 10))).astype(np.float32)
    for c in range(cfg.n):
        for start in rng.integers(0, LOOP - shape.size, max(1, int(LOOP / cfg.fs * 5))):
            x[start:start + shape.size, c] -= 3000 * shape
    return np.rint(x).astype(np.int16)


def crs_loops(cfg: Config) -> IQCalibration:
    """Each CRS channel's IQ loop: centre, radius and the operating point's angle (the given calibration)."""
    rng = np.random.default_rng(11)
    centre = rng.uniform(-4e4, 4e4, cfg.n) + 1j * rng.uniform(-4e4, 4e4, cfg.n)
    return IQCalibration(centre, rng.uniform(-np.pi, np.pi, cfg.n), rng.uniform(4e3, 1.2e4, cfg.n))


def make_crs_iq(cfg: Config, seed: int = 1) -> np.ndarray:
    """``CRS_LOOP`` frames of complex ADC counts (CRS_LOOP, n): each channel on its loop at its operating
    point, with noise, and phase pulses of 0.5 rad (decay 5 samples) on the first 32 channels."""
    rng = np.random.default_rng(seed)
    cal = crs_loops(cfg)
    phase = np.zeros((CRS_LOOP, cfg.n))
    tau, width = 5.0, 40
    shape = 0.5 * np.exp(-np.arange(width) / tau)
    for c in range(min(cfg.n, 32)):
        for start in rng.integers(0, CRS_LOOP - width, 4):
            phase[start:start + width, c] += shape
    iq = cal.centre + cal.radius * np.exp(1j * (cal.rotation + phase))
    return iq + rng.normal(0, 30, iq.shape) + 1j * rng.normal(0, 30, iq.shape)


def crs_channels(cfg: Config) -> list[tuple[int, int]]:
    """The (module, channel) pairs streamed: channels 1..n of module 1 (board numbering)."""
    return [(1, c) for c in range(1, cfg.n + 1)]


def describe(cfg: Config) -> StreamDescription:
    if cfg.kind == "iq":
        return StreamDescription("iq", cfg.fs, cfg.n, "complex64",
                                 {"module": np.ones(cfg.n, np.int32),
                                  "crs_channel": np.arange(1, cfg.n + 1, dtype=np.int32)},
                                 units="counts", source=cfg.name)
    if cfg.kind == "adc":
        f = tone_ifs(cfg)
        return StreamDescription("adc", cfg.fs, cfg.n, "int16", {"tone_if_hz": f, "tone_frequency_hz": 5e9 + f},
                                 source=cfg.name)
    return StreamDescription("channels", cfg.fs, cfg.n, "int16", units="A", counts_per_unit=np.full(cfg.n, 1e7),
                             source=cfg.name)


# --- the sender process ------------------------------------------------------------------------
_EPOCH_DAYS = np.array([(np.datetime64(f"{2000 + y}-01-01") - np.datetime64("1970-01-01")).astype(int)
                        for y in range(100)], np.int64)


def irig_words(t_ns: np.ndarray) -> np.ndarray:
    """UTC ns -> the IRIG-B timestamp words y, d, h, m, s, ss of CRS packets ((n, 6) uint32): the
    inverse of ``cryodaq.wire.crs.irig_to_utc_ns``, vectorized for the sender (checked against it)."""
    sec, ns = np.divmod(np.asarray(t_ns, np.int64), 1_000_000_000)
    days, sod = np.divmod(sec, 86400)
    y = np.searchsorted(_EPOCH_DAYS, days, side="right") - 1
    return np.stack([y, days - _EPOCH_DAYS[y] + 1, sod // 3600, sod // 60 % 60, sod % 60, -(-ns * 5 // 32)],
                    axis=1).astype(np.uint32)


def _send_crs(cfg: Config, host: str, port: int, rate: float, ready: Any, stop: Any, result: Any) -> None:
    """Replay CRS long packets of module 1 (one per frame) at ``rate`` frames/s: the pre-encoded frames
    (``cryodaq.wire.crs.encode``) in a loop, each sent with its own sequence number and IRIG-B stamp."""
    iq = make_crs_iq(cfg)
    ns_per = 1e9 / cfg.fs
    t_ns0 = time.time_ns()
    frames = np.frombuffer(b"".join(crs_wire.encode(module=1, seq=k, stage=CRS_STAGE, iq=iq[k], short=False,
                                                    t_ns=t_ns0 + int(k * ns_per)) for k in range(CRS_LOOP)),
                           np.uint32).reshape(CRS_LOOP, -1).copy()
    words = frames.shape[1]
    ts0 = words - 8  # the timestamp's words: y d h m s ss c sbs
    stamps = t_ns0 + (np.arange(4) * ns_per).astype(np.int64)  # the sender's stamps decode to the encoder's
    check = frames[:4].copy()
    check[:, ts0:ts0 + 6] = irig_words(stamps)
    assert (check == frames[:4]).all(), "irig_words disagrees with cryodaq.wire.crs.encode"
    assert (abs(crs_wire.decode_many(check.view(np.uint8)).t_ns - stamps) < 7).all()  # 6.4 ns ticks
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    rows = [memoryview(frames[k].view(np.uint8)) for k in range(CRS_LOOP)]
    seq = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    ready.set()
    while not stop.is_set():
        due = int((time.perf_counter() - t0) * rate)
        if seq >= due:
            time.sleep(0.0005)
            continue
        due = min(due, seq + CRS_LOOP)  # a row is rewritten only after it was sent
        k = np.arange(seq, due)
        r = k % CRS_LOOP
        frames[r, 3] = k & 0xFFFFFFFF
        frames[r, ts0:ts0 + 6] = irig_words(t_ns0 + (k * ns_per).astype(np.int64))
        frames[r, ts0 + 7] = frames[r, ts0 + 2] * 3600 + frames[r, ts0 + 3] * 60 + frames[r, ts0 + 4]  # sbs
        for i in r.tolist():
            try:
                sock.sendto(rows[i], (host, port))
            except OSError:  # the kernel's send buffer is full: the sender itself cannot keep up
                pass
        seq = due
    result.put((seq, time.perf_counter() - t0, time.process_time() - cpu0))


def _send(cfg_name: str, host: str, port: int, rate: float, ready: Any, stop: Any, result: Any) -> None:
    """Replay packets at ``rate`` samples/s per stream until ``stop`` is set; put (packets, seconds, cpu_s)."""
    cfg = CONFIGS[cfg_name]
    if cfg.kind == "iq":
        _send_crs(cfg, host, port, rate, ready, stop, result)
        return
    data = make_samples(cfg)
    payload = memoryview(data.reshape(-1).view(np.uint8))
    streams = 1 if data.ndim == 1 else data.shape[1]
    per = cfg.packet_samples
    stride = per * streams * 2
    n_pk = LOOP // per
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    pkt_rate = rate / per
    t_ns0 = time.time_ns()
    ns_per = 1e9 / cfg.fs
    seq = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    pack = pk.HEADER.pack
    ready.set()
    while not stop.is_set():
        due = int((time.perf_counter() - t0) * pkt_rate)
        if seq >= due:
            time.sleep(0.0005)
            continue
        while seq < due:
            first = seq * per
            head = pack(pk.MAGIC, pk.VERSION, pk.FMT_REAL_INT16, seq, first, t_ns0 + int(first * ns_per), per,
                        streams, 0)
            off = (seq % n_pk) * stride
            try:
                sock.sendmsg([head, payload[off:off + stride]], (), 0, (host, port))
            except OSError:  # the kernel's send buffer is full: the sender itself cannot keep up
                pass
            seq += 1
    result.put((seq, time.perf_counter() - t0, time.process_time() - cpu0))


class ReplaySource:
    """A :class:`ReadoutSource` whose board is the sender process: packets replayed at ``rate``."""

    def __init__(self, cfg: Config, rate: float) -> None:
        self.cfg, self.rate, self.name = cfg, rate, f"replay-{cfg.name}"
        ctx = mp.get_context("spawn")
        self._ctx, self._ready, self._stop, self._result = ctx, ctx.Event(), ctx.Event(), ctx.Queue()
        self._proc: Any = None
        self.sent: tuple[int, float, float] | None = None

    def describe(self) -> StreamDescription:
        return describe(self.cfg)

    def configure(self, **settings: Any) -> None:
        raise TypeError(f"the replay source takes no settings, got {sorted(settings)}")

    def is_streaming(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start_stream(self, host: str, port: int) -> None:
        self._proc = self._ctx.Process(target=_send, args=(self.cfg.name, host, port, self.rate, self._ready,
                                                           self._stop, self._result), daemon=True)
        self._proc.start()
        if not self._ready.wait(120):  # the sender makes its data first
            raise RuntimeError(f"{self.name}: the sender process did not start")

    def stop_stream(self) -> None:
        self._stop.set()
        self.sent = self._result.get(timeout=30)
        self._proc.join(10)

    def open_receiver(self, host: str, port: int, *, packets_per_block: int,
                      queue_blocks: int) -> UDPReceiver | CRSReceiver:
        if self.cfg.kind == "iq":  # unicast only, bound to ``host`` (as for rfmux's mock without multicast)
            return CRSReceiver(crs_channels(self.cfg), stage=CRS_STAGE, port=port, group=None, interface=host,
                               packets_per_block=packets_per_block, queue_blocks=queue_blocks)
        return UDPReceiver(host, port, packets_per_block=packets_per_block, queue_blocks=queue_blocks)



# --- one trial ------------------------------------------------------------------------------------
@dataclass
class Trial:
    rate: float  # requested samples/s per stream
    seconds: float
    ok: bool = False
    reason: str = ""
    sent_rate: float = 0.0
    received: int = 0
    lost_packets: int = 0
    dropped_blocks: int = 0
    queue_max: int = 0
    queue_end: int = 0
    cpu_percent: float = 0.0
    sender_cpu_percent: float = 0.0
    events: int = 0
    threads: dict[str, float] = field(default_factory=dict)
    profile: str = ""
    load: float = 0.0  # the machine's 1-minute load average at the end of the measured window

    def mb_per_s(self, cfg: Config) -> float:
        """MB/s on the wire: ADC data (int16), or the CRS packets' payload."""
        return self.sent_rate * cfg.streams * cfg.bytes_per_sample / 1e6


def _thread_cpu(proc: psutil.Process) -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in proc.threads()}


def trial(cfg: Config, rate: float, seconds: float, out_dir: Path, profile: bool = False) -> Trial:
    """Stream ``seconds`` at ``rate`` through the real path; see the module docstring."""
    res = Trial(rate, seconds)
    backend = get_backend(None)
    source = ReplaySource(cfg, rate)
    assert isinstance(source, ReadoutSource)
    calibration = crs_loops(cfg) if cfg.kind == "iq" else None  # a given one, as a calibration sweep makes
    pipeline: StreamPipeline = pipeline_for_source(cfg.pipeline, source.describe(), backend, calibration=calibration)
    pipeline.monitor_spectra(nperseg=cfg.pipeline.psd_nperseg, interval_s=cfg.pipeline.psd_interval_s)
    writer = RunWriter.create(out_dir, station_name=cfg.name, station_snapshot={}, config={"benchmark": cfg.name},
                              catalog=False)
    publisher = LivePublisher("tcp://127.0.0.1:0")
    sinks = SinkFanout([RunWriterSink(writer, store_stream=True), publisher])
    info = StreamInfo(station=cfg.name, stream=pipeline.stream_name, units=pipeline.units,
                      output_rate_hz=pipeline.output_rate, adc_rate_hz=cfg.fs, channel_coords=pipeline.channel_coords,
                      run_path=str(writer.path), iq_units=source.describe().units)
    sinks.start(info)
    stats = SessionStats(events_per_channel=np.zeros(cfg.n, np.int64))
    errors: list[BaseException] = []

    def guard(fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # reported with the trial
                errors.append(exc)
        return run

    prof = cProfile.Profile() if profile else None
    if prof is not None:
        inner = pipeline.process

        def profiled(block: Any) -> Any:
            prof.enable()
            try:
                return inner(block)
            finally:
                prof.disable()

        pipeline.process = profiled  # type: ignore[method-assign]
    proc = psutil.Process()
    with receiving(source, packets_per_block=cfg.pipeline.block_packets, queue_blocks=cfg.pipeline.queue_blocks,
                   purpose="the ingest benchmark") as receiver:
        workers = StreamWorkers(receiver, pipeline, sinks, stats, guard=guard)
        workers.start()
        # start-up is not measured: the pipeline's noise calibration (0.25 s of the nominal rate, which at a
        # low replay rate takes seconds to arrive), the queue it let build up draining, the first spectra
        warm_until = time.perf_counter() + 120
        while time.perf_counter() < warm_until and not errors and (
                getattr(pipeline, "thresholds", 0) is None or receiver.blocks.qsize() > 2):
            time.sleep(0.1)
        time.sleep(min(3.0, seconds / 3))
        base = receiver.stats.lost_packets, receiver.stats.dropped_blocks
        cpu0, th0, t0 = proc.cpu_times(), _thread_cpu(proc), time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end and not errors:
            time.sleep(0.1)
            res.queue_max = max(res.queue_max, receiver.blocks.qsize())
        res.queue_end = receiver.blocks.qsize()
        res.load = os.getloadavg()[0]
        cpu1, th1, wall = proc.cpu_times(), _thread_cpu(proc), time.perf_counter() - t0
        names = {t.native_id: t.name for t in threading.enumerate()}
        res.lost_packets = receiver.stats.lost_packets - base[0]
        res.dropped_blocks = receiver.stats.dropped_blocks - base[1]
    workers.join(60)
    sinks.close(interrupted=False, reason="benchmark", error=None)
    res.cpu_percent = 100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall
    for tid, cpu in th1.items():
        name = names.get(tid, "other (zarr, zmq, numba pools)")
        res.threads[name] = res.threads.get(name, 0.0) + (cpu - th0.get(tid, 0.0)) / wall
    if source.sent is not None:
        n, dt, cpu = source.sent
        res.sent_rate = n * cfg.packet_samples / dt
        res.sender_cpu_percent = 100 * cpu / dt
    res.received = receiver.stats.samples
    res.events = stats.events
    if prof is not None:
        text = io.StringIO()
        stats_ = pstats.Stats(prof, stream=text)
        stats_.sort_stats("cumulative").print_stats(20)
        stats_.sort_stats("tottime").print_stats(12)
        res.profile = text.getvalue()
    res.reason = (f"error: {errors[0]!r}" if errors else
                  f"{res.lost_packets} packets lost" if res.lost_packets else
                  f"{res.dropped_blocks} blocks dropped" if res.dropped_blocks else
                  f"queue not bounded ({res.queue_end} of {cfg.pipeline.queue_blocks} at the end)"
                  if res.queue_end > cfg.pipeline.queue_blocks // 4 else
                  f"sender reached only {res.sent_rate / rate:.0%} of the rate" if res.sent_rate < 0.97 * rate else "")
    res.ok = not res.reason
    shutil.rmtree(writer.path, ignore_errors=True)
    return res


def sustained(cfg: Config, start: float, probe: float, hold: float, out_dir: Path, profile: bool,
              log: Any) -> tuple[Trial | None, list[Trial]]:
    """Ramp ×1.6 with ``probe``-second trials, bisect twice, then hold the best for ``hold`` s (step down by 10 %
    on failure)."""
    trials: list[Trial] = []

    def run(rate: float, seconds: float, prof: bool = False) -> Trial:
        t = trial(cfg, rate, seconds, out_dir, prof)
        trials.append(t)
        log(f"  {cfg.name}: {rate / 1e6:8.4f} MS/s per stream for {seconds:4.0f} s: {'ok  ' if t.ok else 'FAIL'} "
            f"{t.mb_per_s(cfg):7.1f} MB/s cpu {t.cpu_percent:5.0f}% (sender {t.sender_cpu_percent:3.0f}%) "
            f"queue max {t.queue_max} load {t.load:.2f} {t.reason}")
        return t

    good, bad, rate = 0.0, None, start
    while bad is None:
        if run(rate, probe).ok:
            good, rate = rate, rate * 1.6
        else:
            bad = rate
        if rate > 2e9:
            break
    for _ in range(2):
        if bad is None or good == 0:
            break
        mid = (good + bad) / 2
        if run(mid, probe).ok:
            good = mid
        else:
            bad = mid
    rate = good or start / 2
    for _ in range(6):
        t = run(rate, hold, profile)
        if t.ok:
            return t, trials
        rate *= 0.9
    return None, trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write every trial and the result per configuration to this file")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--hold", type=float, default=30.0, help="seconds the sustained rate is held (>= 30 for the figure)")
    ap.add_argument("--probe", type=float, default=4.0, help="seconds of each ramp step")
    ap.add_argument("--start", type=float, default=None, help="first rate, MS/s of ADC samples per stream")
    ap.add_argument("--profile", action="store_true", help="cProfile the pipeline thread during the hold")
    ap.add_argument("--dir", type=Path, default=None, help="where the runs are written (default: a temporary folder)")
    args = ap.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="cryodaq-ingest-", dir=args.dir))
    load = os.getloadavg()[0]
    print(f"cryodaq ingest benchmark: {os.cpu_count()} cores, load {load:.2f}, backend {get_backend(None).name}",
          flush=True)
    results: dict[str, Any] = {"load_before": load, "backend": get_backend(None).name, "configs": {}}
    try:
        for name in args.configs.split(","):
            cfg = CONFIGS[name]
            streams = cfg.streams
            start = args.start * 1e6 if args.start else (4e6 if cfg.kind == "adc" else
                                                          4e6 / streams if cfg.kind == "iq" else 2e6 / streams)
            best, trials = sustained(cfg, start, args.probe, args.hold, out_dir, args.profile,
                                     lambda s: print(s, flush=True))
            what = ("complex IQ samples per channel x channels; MB/s of CRS packet payload" if cfg.kind == "iq" else
                    "ADC samples (int16) x streams; MB/s of ADC data")
            entry: dict[str, Any] = {"units": what, "trials": [t.__dict__ | {"mb_per_s": t.mb_per_s(cfg)}
                                                               for t in trials]}
            if best is not None:
                entry.update(ms_per_s=best.sent_rate * streams / 1e6, mb_per_s=best.mb_per_s(cfg),
                             cpu_percent=best.cpu_percent, sender_cpu_percent=best.sender_cpu_percent,
                             held_s=best.seconds, threads=best.threads, load=best.load)
                data = "of CRS packet payload (MS/s: complex IQ samples x channels)" if cfg.kind == "iq" else \
                    "of ADC data"
                print(f"{name:9s} sustained {best.sent_rate * streams / 1e6:8.2f} MS/s = {best.mb_per_s(cfg):7.1f} "
                      f"MB/s {data} for {best.seconds:.0f} s, zero drops, cryodaq CPU {best.cpu_percent:.0f} % "
                      f"(sender {best.sender_cpu_percent:.0f} %), load {best.load:.2f}", flush=True)
                print("          threads (CPU s/s): " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                              sorted(best.threads.items(), key=lambda kv: -kv[1])
                                                              if v >= 0.01))
                if best.profile:
                    print(best.profile)
            else:
                print(f"{name:9s} no rate sustained (see the trials above)")
            results["configs"][name] = entry
        results["load_after"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=str)


if __name__ == "__main__":
    sys.exit(main())
