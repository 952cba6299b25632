"""What reading a CRS board's stream costs (prints figures; not a test).

1. Decoding: CRS readout packets per second, cryodaq's batch decoder (``cryodaq.wire.crs.decode_many``,
   the receiver's path: 64 datagrams at once, 8 channels lifted) against one at a time and against
   rfmux's own C++ parser (``rfmux.streamer.ReadoutPacket`` + ``numpy.array``, run in rfmux's
   environment on the same bytes) -- ratios in one run.
2. Receiving: ``CRSReceiver`` fed over loopback by a sender process at a board's packet rate for
   a decimation stage (one packet per module per sample), 2 modules, 8 channels each: what
   fraction of the samples became blocks, the gaps it recorded, and the receiving process's CPU
   per packet. A CRS at stage 0 sends 38 147 short packets per second per module.

    python benchmarks/crs_receiver.py [--packets 20000] [--seconds 3] [--stages 6 4 3 2 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil

from cryodaq.readout.crs_receiver import CRSReceiver
from cryodaq.wire import crs as wire

T0 = 1_796_654_422_194_356_998
CHANNELS = np.arange(8)

RFMUX_TIMING = r'''
import importlib.metadata, pathlib, sys, time, types
root = pathlib.Path(importlib.metadata.distribution("rfmux").locate_file("rfmux"))
pkg = types.ModuleType("rfmux"); pkg.__path__ = [str(root)]; sys.modules["rfmux"] = pkg
import numpy as np
from rfmux.streamer import ReadoutPacket
data = open(sys.argv[1], "rb").read(); size = int(sys.argv[2]); n = len(data) // size
packets = [data[i * size:(i + 1) * size] for i in range(n)]
t = time.perf_counter()
for p in packets:
    z = np.array(ReadoutPacket(p)); ts = ReadoutPacket(p).ts.ss
print(n / (time.perf_counter() - t))
'''


def packets(n: int, short: bool, modules: int = 2) -> list[bytes]:
    rng = np.random.default_rng(1)
    nch = wire.SHORT_CHANNELS if short else wire.LONG_CHANNELS
    iq = rng.normal(0, 3000, nch) + 1j * rng.normal(0, 3000, nch)
    fs = wire.sample_rate_hz(3)
    return [wire.encode(module=1 + k % modules, seq=k // modules, stage=3, iq=iq, short=short,
                        t_ns=T0 + int((k // modules) * 1e9 / fs)) for k in range(n)]


def decode_rates(n: int) -> None:
    print("decoding (packets/s; 8 channels lifted)")
    for short in (False, True):
        data = packets(n, short)
        size = len(data[0])
        buf = np.frombuffer(b"".join(data), np.uint8).reshape(n, size)
        t = time.perf_counter()
        for i in range(0, n, 64):
            wire.decode_many(buf[i:i + 64], channels=CHANNELS)
        batch = n / (time.perf_counter() - t)
        t = time.perf_counter()
        for p in data[: n // 4]:
            wire.decode(p, channels=CHANNELS)
        one = (n // 4) / (time.perf_counter() - t)
        theirs = _rfmux_rate(b"".join(data), size)
        ratio = f"{batch / theirs:5.2f}x rfmux" if theirs else "(rfmux not available)"
        print(f"  {'short' if short else 'long ':5} {size:5d} B: batch of 64 {batch:9.0f}  one at a time {one:8.0f}"
              f"  rfmux ReadoutPacket {theirs or 0:8.0f}  -> batch is {ratio}, {batch / one:4.1f}x one at a time")


def _rfmux_rate(data: bytes, size: int) -> float | None:
    try:
        from sim_instruments.servers.rfmux_env import rfmux_python

        python = rfmux_python(build=False)
    except Exception:
        return None
    with tempfile.NamedTemporaryFile(suffix=".bin") as fh:
        fh.write(data)
        fh.flush()
        out = subprocess.run([str(python), "-c", RFMUX_TIMING, fh.name, str(size)], capture_output=True, text=True)
    return float(out.stdout.strip()) if out.returncode == 0 else None


SENDER = r'''
import socket, sys, time
import numpy as np
from cryodaq.wire import crs as wire
port, stage, seconds, short = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
fs = wire.sample_rate_hz(stage)
iq = np.full(128 if short else 1024, 1000 + 500j)
frames = {m: [wire.encode(module=m, seq=k, stage=stage, iq=iq, short=short, t_ns=1_796_654_422_000_000_000
                          + int(k * 1e9 / fs)) for k in range(4096)] for m in (1, 2)}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
start, k, sent = time.perf_counter(), 0, 0
while True:
    due = int((time.perf_counter() - start) * fs)
    if due >= fs * seconds:
        break
    while k < due:
        for m in (1, 2):
            p = bytearray(frames[m][k % 4096])
            p[12:16] = k.to_bytes(4, "little")  # seq; the stamps repeat every 4096: the receiver only counts
            s.sendto(p, ("127.0.0.1", port))
            sent += 1
        k += 1
    time.sleep(0.0005)
print(sent, k)
'''


def receive_rates(stages: list[int], seconds: float) -> None:
    print(f"receiving over loopback (2 modules x 8 channels, {seconds:g} s per stage)")
    me = psutil.Process()
    for stage in stages:
        short = stage <= 2
        rx = CRSReceiver([(m, c) for m in (1, 2) for c in range(1, 9)], stage=stage, port=0, group=None,
                         packets_per_block=256, queue_blocks=100_000).start()
        cpu0 = me.cpu_times()
        sender = subprocess.run([sys.executable, "-c", SENDER, str(rx.port), str(stage), str(seconds),
                                 "1" if short else "0"], capture_output=True, text=True)
        time.sleep(0.3)
        rx.stop(drain_s=1.0)
        cpu = sum(me.cpu_times()[:2]) - sum(cpu0[:2])
        sent_packets, frames = (int(v) for v in sender.stdout.split())
        got = sum(b.n_samples for b in iter(rx.blocks.get, None))
        offered = sent_packets / seconds
        print(f"  stage {stage} ({'short' if short else 'long '}): offered {offered:8.0f} packets/s "
              f"({frames / seconds / wire.sample_rate_hz(stage):4.0%} of the board's rate): "
              f"{got / frames:6.1%} of samples received, {rx.stats.gaps} gaps, "
              f"{1e6 * cpu / max(rx.stats.packets, 1):5.1f} us CPU per packet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--stages", type=int, nargs="*", default=[6, 4, 3, 2, 1])
    args = parser.parse_args()
    print(f"cpus: {psutil.cpu_count()}, load average: {', '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    decode_rates(args.packets)
    receive_rates(args.stages, args.seconds)


if __name__ == "__main__":
    main()
