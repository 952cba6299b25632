"""What the live publisher costs the pipeline: time per ``output()`` call (prints figures; not a test).

One pipeline output is a 16 ms block (256 samples at 16 kS/s per channel) with a
few events, as the demo station produces ~62 times a second; blocks are fed at
that real-time pace so rate limiting and batching behave as in a run. Measured
for 8 and 2000 channels, with no subscriber, a subscriber that reads, and one
that is stalled (never reads: the publisher drops and counts). Compare with the
block's duration (16 ms) to see the share of the pipeline's time budget.

Then, in a real demo session (``--session S`` seconds, a reading subscriber in
another process), the time the pipeline thread spends in the publisher against
the time it spends in the DSP (``MKIDPipeline.process``): the share that counts.

    python benchmarks/publisher.py [--blocks 250] [--session 6]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from cryodaq.acquisition.pipeline import PipelineOutput
from cryodaq.live.publisher import LivePublisher
from cryodaq.acquisition.sinks import StreamInfo
from cryodaq.dsp import EventBatch

RATE = 16_000.0
BLOCK = 256


def outputs(n_channels: int, count: int) -> list[PipelineOutput]:
    rng = np.random.default_rng(0)
    data = rng.normal(0, 0.01, (BLOCK, n_channels)).astype(np.float32)
    iq = (80 * np.exp(1j * data)).astype(np.complex64)
    out = []
    for k in range(count):
        idx = np.arange(k * BLOCK, (k + 1) * BLOCK, dtype=np.int64)
        t = np.round(idx * 1e9 / RATE).astype(np.int64)
        ev = EventBatch(idx[[10, 200]] * 128, [0, n_channels - 1], [0.6, 0.5], [0, 0], [0, 0],
                        rng.normal(0, 0.01, (2, 64)), presamples=16)
        out.append(PipelineOutput(data, idx, t, ev, t[[10, 200]], iq))
    return out


def measure(n_channels: int, mode: str, blocks: int) -> tuple[float, float, float, dict[str, int]]:
    ctx = zmq.Context()
    pub = LivePublisher("tcp://127.0.0.1:0")
    sub = None
    stop = threading.Event()
    if mode != "none":
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 10)
        sub.setsockopt(zmq.RCVBUF, 65536)
        sub.connect(pub.address)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        time.sleep(0.3)
    if mode == "reading":
        def read() -> None:
            while not stop.is_set():
                if sub.poll(50):
                    sub.recv_multipart()

        threading.Thread(target=read, daemon=True).start()
    info = StreamInfo("bench", "phase", "rad", RATE, 2.048e6,
                      {"channel": np.arange(n_channels, dtype=np.int32)}, None)
    pub.start(info)
    outs = outputs(n_channels, blocks)
    times = np.empty(blocks)
    cpu = np.empty(blocks)
    next_t = time.perf_counter()
    for i, o in enumerate(outs):
        a, c = time.perf_counter(), time.thread_time()
        pub.output(o)
        times[i], cpu[i] = time.perf_counter() - a, time.thread_time() - c
        next_t += BLOCK / RATE
        time.sleep(max(0.0, next_t - time.perf_counter()))
    stop.set()
    pub.close(interrupted=False, reason="", error=None)
    if sub is not None:
        sub.close(linger=0)
    ctx.term()
    return float(np.median(times)), float(np.median(cpu)), float(cpu.mean()), dict(pub.drops)


READER = """
import sys, zmq
s = zmq.Context().socket(zmq.SUB); s.connect(sys.argv[1]); s.setsockopt(zmq.SUBSCRIBE, b"")
while True:
    s.recv_multipart()
"""


def session_share(duration_s: float) -> None:
    """Pipeline-thread time in LivePublisher.output vs MKIDPipeline.process during a demo run."""
    from cryodaq.acquisition.pipeline import MKIDPipeline
    from cryodaq.acquisition.session import StreamSession
    from cryodaq.station import load_station_config

    spent = {"publisher": [0.0, 0], "pipeline": [0.0, 0], "sender": [0.0, 0]}

    def timed(fn: Callable[..., Any], key: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key][0] += time.thread_time() - t
                spent[key][1] += 1
        return wrapper

    LivePublisher.output = timed(LivePublisher.output, "publisher")
    LivePublisher._run = timed(LivePublisher._run, "sender")  # the whole sender thread's CPU
    MKIDPipeline.process = timed(MKIDPipeline.process, "pipeline")
    pub = LivePublisher("tcp://127.0.0.1:0")
    reader = subprocess.Popen([sys.executable, "-c", READER, pub.address])
    station = Path(__file__).resolve().parents[1] / "stations" / "demo_mkid.yaml"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            summary = StreamSession(load_station_config(station), tmp, simulate=True, sinks=[pub]).run(duration_s)
    finally:
        reader.kill()
    (p_s, p_n), (d_s, d_n) = spent["publisher"], spent["pipeline"]
    print(f"demo session {duration_s:.0f} s: pipeline thread CPU in MKIDPipeline.process {d_s:.3f} s "
          f"({d_n} blocks), in LivePublisher.output {p_s:.3f} s ({p_n} outputs) = {p_s / d_s:.1%} of the DSP; "
          f"the publisher's sender thread used {spent['sender'][0]:.3f} s of CPU "
          f"({spent['sender'][0] / duration_s:.1%} of a core); "
          f"{pub.sent['stream']} stream messages sent, {pub.total_drops} dropped; "
          f"{summary.stats.dropped_blocks} blocks dropped by the receiver")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=250, help="blocks per case (16 ms each)")
    parser.add_argument("--session", type=float, default=6.0, help="seconds of demo session (0: skip)")
    args = parser.parse_args()
    print(f"LivePublisher.output() per {BLOCK}-sample block (16 ms of data): wall median; thread CPU median, mean")
    for n in (8, 2000):
        for mode in ("none", "reading", "stalled"):
            wall, cpu_med, cpu_mean, drops = measure(n, mode, args.blocks)
            dropped = sum(drops.values())
            print(f"  {n:5d} channels, subscriber {mode:8s}: wall {wall * 1e6:7.1f} us; CPU {cpu_med * 1e6:6.1f} us, "
                  f"mean {cpu_mean * 1e6:6.1f} us ({cpu_mean / 0.016:.2%} of the block's time); "
                  f"{dropped} messages dropped")
    if args.session > 0:
        session_share(args.session)


if __name__ == "__main__":
    main()
