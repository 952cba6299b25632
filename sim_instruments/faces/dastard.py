"""Simulated NIST DASTARD: triggered TES records over ZeroMQ, status, and its JSON-RPC control port.

Serves what a running DASTARD serves (:mod:`cryodaq.wire.dastard`), from a base port:

==========  ====================================================================================
base + 0    JSON-RPC (Go ``net/rpc/jsonrpc`` framing): ``SourceControl.SendAllStatus`` (re-broadcasts
            STATUS, CHANNELNAMES, TRIGGER, WRITING), ``SourceControl.Multiply`` ({"A", "B"}); faults
            for tests: ``Simulation.DropRecords`` n (the next n records are triggered and counted but
            not sent), ``Simulation.SwapRecords`` n (n times, a channel's next two records go out in
            reverse order), ``Simulation.Stats`` (counters)
base + 1    status PUB: ALIVE every 2 s, TRIGGERRATE every second of data, the rest on SendAllStatus
base + 2    records PUB: 2 frames, 36-byte header + uint16 samples, for every channel
==========  ====================================================================================

(Real DASTARD also publishes record summaries on base + 4; cryodaq does not use them, so they
are left out.) The data are the world's TES array (:mod:`sim_instruments.world.tes_array`, which
needs ``world.tes.enabled``): each channel's int16 FLL counts + 32768 as DASTARD's raw uint16, made
in segments of ``segment_s`` paced by the wall clock. A falling-edge trigger like DASTARD's
EdgeTrigger (``x[k] - x[k-1] <= -edge_level``, no retrigger within a record) cuts records of
``record_length`` samples, ``presamples`` before the trigger; a segment's records go out channel by
channel, as DASTARD's do. Frame index = sample index since the source started; trigger time =
start time + frame × sample period. TRIGGERRATE windows are ``(HiTime - 1 s, HiTime]`` on a grid
of whole seconds. The face biases its array at ``bias_a`` (its lab keeps the TESs in transition;
the station needs no bias source). Port 0: a free block of ports is chosen.
"""

from __future__ import annotations

import logging
import math
import random
import socket
import threading
import time
from typing import Any

import numpy as np
import zmq

from cryodaq.wire import dastard as dw
from sim_instruments.faces.tes_access import require_tes
from sim_instruments.servers.jsonrpc_server import JsonRpcServer, RpcError
from sim_instruments.world.world import World

__all__ = ["DastardFace", "free_base_port"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_ALIVE_EVERY_S = 2.0


def free_base_port(host: str, n: int, *, tries: int = 200) -> int:
    """The first of ``n`` consecutive TCP ports free on ``host`` now: DASTARD serves fixed offsets
    from one base port, which binding port 0 cannot give."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20000, 60000 - n)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"found no {n} consecutive free TCP ports on {host} in {tries} tries")


class DastardFace:
    """A DASTARD serving the world's TES array on ``host`` from base port ``port`` (see the module doc)."""

    face = "dastard"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "dastard", *,
                 record_length: int = 500, presamples: int = 100, edge_level: int = 60, segment_s: float = 0.05,
                 bias_a: float | None = 3.5e-4, source_name: str = "SimPulses", sndhwm: int = 1000) -> None:
        self.world = world
        self.name = name
        self.tes = require_tes(world, name, self.face)
        if not 0 <= presamples < record_length:
            raise ValueError(f"{name}: need 0 <= presamples < record_length, got {presamples}, {record_length}")
        self.record_length, self.presamples = int(record_length), int(presamples)
        self.edge_level, self.segment_s = int(edge_level), float(segment_s)
        self.bias_a, self.source_name = bias_a, source_name
        self.host = host
        base = int(port) or free_base_port(host, dw.PORT_SUMMARIES + 1)
        self.rpc = JsonRpcServer(self._call, host, base + dw.PORT_RPC, name)
        self.port = self.rpc.port
        self.fs = float(self.tes.config.fs_hz)
        self.n_channels = self.tes.n_channels
        self.channel_names = [f"chan{k + 1}" for k in range(self.n_channels)]
        self._ctx = zmq.Context()
        self._pub_lock = threading.Lock()  # the RPC threads and the data thread share the status socket
        self._status_pub = self._bind(self.port + dw.PORT_STATUS, sndhwm)
        self._records_pub = self._bind(self.port + dw.PORT_RECORDS, sndhwm)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fault_lock = threading.Lock()
        self._drop_next = 0
        self._swap_next = 0
        self._held: tuple[int, list[bytes]] | None = None
        self.stats = {"segments": 0, "triggers": 0, "sent": 0, "dropped": 0, "swapped": 0, "late": 0}

    def _bind(self, port: int, sndhwm: int) -> zmq.Socket:
        sock = self._ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, int(sndhwm))
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(f"tcp://{self.host}:{port}")
        return sock

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> DastardFace:
        if self.bias_a is not None:
            self.tes.set_bias(self.tes.bias_line(self.name), float(self.bias_a))
        self.rpc.start()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-data", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.rpc.stop()
        with self._pub_lock:
            self._status_pub.close(linger=0)
            self._records_pub.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> DastardFace:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- status ------------------------------------------------------------------------------
    @property
    def sample_period_ns(self) -> int:
        return int(round(1e9 / self.fs))

    def status(self) -> dict[str, Any]:
        return {"Running": True, "SourceName": self.source_name, "Nchannels": self.n_channels,
                "Nsamples": self.record_length, "Npresamp": self.presamples, "SamplePeriod": self.sample_period_ns,
                "ChanGroups": [{"Firstchan": 1, "Nchan": self.n_channels}], "ChannelsWithProjectors": []}

    def _publish_status(self, topic: str, payload: Any) -> None:
        with self._pub_lock:
            if not self._status_pub.closed:
                self._status_pub.send_multipart(dw.encode_status(topic, payload))

    def send_all_status(self) -> None:
        self._publish_status("STATUS", self.status())
        self._publish_status("CHANNELNAMES", self.channel_names)
        self._publish_status("TRIGGER", [{"ChannelIndicies": list(range(self.n_channels)), "AutoTrigger": False,
                                          "EdgeTrigger": True, "EdgeLevel": self.edge_level, "EdgeRising": False,
                                          "LevelTrigger": False}])
        self._publish_status("WRITING", {"Active": False, "Paused": False, "BasePath": "", "FilenamePattern": ""})

    # -- JSON-RPC ------------------------------------------------------------------------------
    def _call(self, method: str, param: Any) -> Any:
        if method == "SourceControl.SendAllStatus":
            self.send_all_status()
            return True
        if method == "SourceControl.Multiply":
            try:
                return int(param["A"]) * int(param["B"])
            except (KeyError, TypeError, ValueError):
                raise RpcError("Multiply takes {\"A\": int, \"B\": int}") from None
        if method in ("Simulation.DropRecords", "Simulation.SwapRecords"):
            if isinstance(param, bool) or not isinstance(param, int) or param < 0:
                raise RpcError(f"{method} takes a count >= 0, got {param!r}")
            with self._fault_lock:
                if method == "Simulation.DropRecords":
                    self._drop_next += param
                else:
                    self._swap_next += param
            return True
        if method == "Simulation.Stats":
            return dict(self.stats)
        raise RpcError(f"rpc: can't find method {method}")

    # -- data ------------------------------------------------------------------------------
    def _send_record(self, channel: int, frames: list[bytes]) -> None:
        with self._fault_lock:
            if self._drop_next:
                self._drop_next -= 1
                self.stats["dropped"] += 1
                return
            if self._held is None and self._swap_next:
                self._swap_next -= 1
                self._held = (channel, frames)  # goes out after this channel's next record
                return
            held, self._held = (self._held, None) if self._held and self._held[0] == channel else (None, self._held)
        self._records_pub.send_multipart(frames)
        self.stats["sent"] += 1
        if held is not None:
            self._records_pub.send_multipart(held[1])
            self.stats["sent"] += 1
            self.stats["swapped"] += 1

    def _run(self) -> None:
        try:
            self._stream()
        except Exception:  # the face must not die silently: log, and the subscriber sees records stop
            log.exception("%s: data thread died", self.name)

    def _stream(self) -> None:
        stream = self.tes.new_stream()
        n_ch, length, pre = self.n_channels, self.record_length, self.presamples
        period_ns = 1e9 / self.fs
        period_s = 1.0 / self.fs
        volts_per_arb = 1.0 / float(self.tes.config.adc_counts_per_volt)
        seg = max(int(round(self.segment_s * self.fs)), 1)
        t0_ns, t0 = time.time_ns(), time.monotonic()
        hi0 = (t0_ns // _NS + 1) * _NS  # TRIGGERRATE windows end on whole seconds
        counts: dict[int, np.ndarray] = {}
        next_window = 0
        hist = np.empty((0, n_ch), np.uint16)
        hist_first = 0  # sample index of hist[0]
        search_from = pre + 1  # first sample that can trigger: pre samples before it, one for the difference
        last_trigger = np.full(n_ch, -(10 ** 12), np.int64)
        first = 0
        alive_at, alive_mb, alive_s = t0 + _ALIVE_EVERY_S, 0.0, 0.0
        while not self._stop.is_set():
            wait = t0 + (first + seg) / self.fs - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            if wait < -0.5:
                self.stats["late"] += 1
            raw = (stream.block(first, seg).astype(np.int32) + 32768).astype(np.uint16)
            first += seg
            self.stats["segments"] += 1
            alive_mb += raw.nbytes / 1e6
            alive_s += seg / self.fs
            hist = np.concatenate([hist, raw]) if len(hist) else raw
            search_to = hist_first + len(hist) - (length - pre)  # a trigger before it has its whole record
            if search_to > search_from:
                a, b = search_from - hist_first, search_to - hist_first
                x = hist.astype(np.int32)
                falls = (x[a:b] - x[a - 1:b - 1]) <= -self.edge_level
                for ch in range(n_ch):  # a segment's records go out channel by channel, as DASTARD's do
                    for k in np.flatnonzero(falls[:, ch]) + search_from:
                        if k - last_trigger[ch] < length:
                            continue
                        last_trigger[ch] = k
                        start = int(k) - pre - hist_first
                        t_ns = t0_ns + int(round(int(k) * period_ns))
                        header = dw.RecordHeader(ch, 3, pre, length, period_s, volts_per_arb, t_ns, int(k))
                        self._send_record(ch, dw.encode_record(header, hist[start:start + length, ch]))
                        self.stats["triggers"] += 1
                        w = max(0, math.ceil((t_ns - hi0) / _NS))
                        counts.setdefault(w, np.zeros(n_ch, np.int64))[ch] += 1
                search_from = search_to
            keep_from = search_from - pre - 1
            hist, hist_first = hist[keep_from - hist_first:], keep_from
            searched_ns = t0_ns + (search_from - 1) * period_ns  # every trigger up to here is found
            while hi0 + next_window * _NS <= searched_ns:
                seen = counts.pop(next_window, np.zeros(n_ch, np.int64))
                self._publish_status("TRIGGERRATE", {"HiTime": dw.format_go_time(hi0 + next_window * _NS),
                                                     "Duration": _NS, "CountsSeen": seen.tolist()})
                next_window += 1
            if time.monotonic() >= alive_at:
                self._publish_status("ALIVE", {"Running": True, "Time": alive_s, "DataMB": alive_mb,
                                               "HWactualMB": alive_mb})
                alive_at, alive_mb, alive_s = alive_at + _ALIVE_EVERY_S, 0.0, 0.0
