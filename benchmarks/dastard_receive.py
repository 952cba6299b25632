"""DASTARD records into cryodaq: records per second one receiver takes, and what the record pipeline and the
Zarr writer add (prints figures; not a test).

A publisher process encodes N records (C channels, L uint16 samples each) in DASTARD's format and sends them
over loopback ZeroMQ, as fast as it can, once a subscriber is connected. Measured in one run, each with a fresh
publisher:

1. bare pyzmq: ``recv_multipart`` of every message, nothing else (the ceiling of one Python thread here);
2. :class:`~cryodaq.readout.DastardReceiver`: decode, per-channel frame order, trigger-count bookkeeping,
   batches on the bounded queue (a consumer only empties the queue);
3. the whole chain a session runs: receiver -> :class:`~cryodaq.acquisition.RecordPipeline` ->
   :class:`~cryodaq.acquisition.RunWriterSink` (Zarr, committed about once a second), in two threads.

The three are measured in turn, ``--repeat`` times, and each prints its best round (a shared machine's
load comes and goes): records/s, MB/s of samples, the ratio to (1), and records lost (never received, or
dropped by the bounded queue: counted, never blocking). For scale: 256 channels triggering at 20 Hz each
are 5 120 records/s.

    python benchmarks/dastard_receive.py [--records 40000] [--samples 500] [--channels 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import tempfile
import threading
import time

import numpy as np
import zmq

from cryodaq.acquisition.pipeline import RecordPipeline
from cryodaq.acquisition.sinks import RunWriterSink, StreamInfo
from cryodaq.config import PipelineConfig
from cryodaq.readout import DastardReceiver, StreamDescription
from cryodaq.storage import RunWriter
from cryodaq.wire import dastard as dw


def publish(base: int, n: int, samples: int, channels: int, ready: mp.Event) -> None:
    """The publisher process: waits for a subscriber, then sends ``n`` records as fast as it can."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.bind(f"tcp://127.0.0.1:{base + dw.PORT_RECORDS}")
    status = ctx.socket(zmq.PUB)
    status.bind(f"tcp://127.0.0.1:{base + dw.PORT_STATUS}")
    rng = np.random.default_rng(0)
    data = [rng.integers(0, 65536, samples).astype(np.uint16) for _ in range(16)]
    messages = [dw.encode_record(dw.RecordHeader(k % channels, 3, samples // 5, samples, 1e-5, 1 / 65535,
                                                 1_800_000_000_000_000_000 + k * 1000, k // channels), data[k % 16])
                for k in range(n)]  # encoded first, so that sending outpaces any receiver
    ready.set()
    sock.recv()  # a subscription
    time.sleep(0.2)
    for frames in messages:
        sock.send_multipart(frames)
    time.sleep(1.0)  # let the last messages leave before the socket closes
    sock.close(linger=2000)
    status.close(linger=0)
    ctx.term()


def free_base() -> int:
    from sim_instruments.faces.dastard import free_base_port

    return free_base_port("127.0.0.1", 5)


def start_publisher(n: int, samples: int, channels: int) -> tuple[int, mp.Process]:
    base = free_base()
    ready = mp.get_context("spawn").Event()
    proc = mp.get_context("spawn").Process(target=publish, args=(base, n, samples, channels, ready), daemon=True)
    proc.start()
    ready.wait(30)
    return base, proc


def bare(n: int, samples: int, channels: int) -> tuple[float, int]:
    base, proc = start_publisher(n, samples, channels)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(f"tcp://127.0.0.1:{base + dw.PORT_RECORDS}")
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    got, t0 = 0, None
    while got < n and sock.poll(3000):
        sock.recv_multipart()
        t0 = t0 or time.perf_counter()
        got += 1
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    sock.close(linger=0)
    proc.join(10)
    return elapsed, got


def receiver_only(n: int, samples: int, channels: int, *, store: bool) -> tuple[float, int, int]:
    base, proc = start_publisher(n, samples, channels)
    rx = DastardReceiver(f"tcp://127.0.0.1:{base}", records_per_block=256, queue_blocks=256, rcvhwm=0)
    stream = StreamDescription(kind="records", sample_rate_hz=1e5, n_channels=channels, sample_dtype="uint16",
                               units="arb", source="bench")
    done = threading.Event()
    counts = {"records": 0, "first": 0.0, "last": 0.0}
    tmp = tempfile.TemporaryDirectory()

    def consume() -> None:
        pipe = RecordPipeline(PipelineConfig(), stream)
        sink = None
        if store:
            writer = RunWriter.create(tmp.name, station_name="bench", station_snapshot={}, config={}, catalog=False)
            sink = RunWriterSink(writer, store_stream=False)
            sink.start(StreamInfo("bench", "records", "arb", 1e5, 1e5, pipe.channel_coords, str(writer.path)))
        while True:
            try:
                block = rx.blocks.get(timeout=0.5)
            except queue.Empty:
                continue
            if block is None:
                break
            counts["first"] = counts["first"] or time.perf_counter()
            for out in pipe.process(block) if store else []:
                sink.output(out)  # type: ignore[union-attr]
            counts["records"] += block.n_records
            counts["last"] = time.perf_counter()
        if sink is not None:
            sink.close(interrupted=False, reason="done", error=None)
            counts["last"] = time.perf_counter()
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    rx.start()
    rx.subscribe()
    last, idle_since = -1, time.monotonic()
    while rx.stats.packets < n and time.monotonic() - idle_since < 3.0:  # all arrived, or nothing more comes
        time.sleep(0.05)
        if rx.stats.packets != last:
            last, idle_since = rx.stats.packets, time.monotonic()
    rx.unsubscribe()
    rx.stop(drain_s=1.0)
    done.wait(120)
    proc.join(10)
    tmp.cleanup()
    return counts["last"] - counts["first"], counts["records"], rx.stats.dropped_samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    mb = a.samples * 2 / 1e6
    print(f"{a.records} records of {a.samples} uint16 samples, {a.channels} channels, loopback ZeroMQ, "
          f"best of {a.repeat}")
    best: dict[str, tuple[float, int, int]] = {}  # label -> (records/s, lost, dropped by the queue)
    for _ in range(a.repeat):
        t, n = bare(a.records, a.samples, a.channels)
        best["bare recv_multipart"] = max(best.get("bare recv_multipart", (0.0, 0, 0)), (n / t, a.records - n, 0))
        for label, store in (("DastardReceiver", False), ("receiver+pipeline+Zarr", True)):
            t, n, dropped = receiver_only(a.records, a.samples, a.channels, store=store)
            rate = (n + dropped) / t if t > 0 else 0.0  # records the receiver took per second
            best[label] = max(best.get(label, (0.0, 0, 0)), (rate, a.records - n - dropped, dropped))
    ceiling = best["bare recv_multipart"][0]
    for label, (rate, lost, dropped) in best.items():
        print(f"  {label:26s} {rate:10.0f} records/s  {rate * mb:7.1f} MB/s  ({rate / ceiling:.2f})"
              f"  lost {lost}, dropped by the queue {dropped}")


if __name__ == "__main__":
    main()
