"""RunWriter throughput: raw int16 ADC stream and float32 phase stream, 64 channels.

Appends blocks of ~0.1 s and commits every ~1 s of data, as the acquisition does, and
prints MB/s of uncompressed data written (commit and close included) and the ratio on disk.

    python benchmarks/storage_write.py [--seconds 2] [--dir /path/on/the/target/disk]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from cryodaq.storage import RunWriter


def _size(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def bench(out: Path, name: str, dtype: str, n_channels: int, rate: float, seconds: float) -> float:
    """Write ``seconds`` of a (time, channel) stream to a new run in ``out``; prints and returns MB/s."""
    rng = np.random.default_rng(0)
    block = int(rate / 10)
    if dtype == "int16":  # ADC noise, ~8 bits of it
        pool = rng.normal(0, 200, (4 * block, n_channels)).astype(np.int16)
    else:  # phase: white noise on a slow random walk
        pool = (rng.normal(0, 1e-3, (4 * block, n_channels)) + rng.normal(0, 1e-4, (4 * block, n_channels)).cumsum(0))
        pool = pool.astype(np.float32)
    n_blocks = int(seconds * 10)
    w = RunWriter.create(out, station_name="bench", station_snapshot={}, config={})
    w.declare_stream(name, n_channels=n_channels, dtype=dtype, sample_rate_hz=rate, units="adu" if dtype == "int16" else "rad")
    t0 = time.perf_counter()
    for b in range(n_blocks):
        si = np.arange(b * block, (b + 1) * block, dtype=np.int64)
        start = (b % 4) * block
        w.append_stream(name, pool[start : start + block], si, si * int(1e9 / rate))
        if b % 10 == 9:
            w.commit()
    w.close()
    dt = time.perf_counter() - t0
    nbytes = n_blocks * block * n_channels * np.dtype(dtype).itemsize
    ratio = nbytes / _size(w.path)
    print(f"{name:6s} {dtype:8s} {n_channels} ch at {rate/1e3:g} kS/s: {nbytes/1e6:7.1f} MB in {dt:5.2f} s "
          f"= {nbytes/dt/1e6:6.1f} MB/s ({n_blocks*block/dt/1e6:.2f} MS/s per channel), on disk 1/{ratio:.2f}")
    return nbytes / dt / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds of data per stream")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="cryodaq-bench-", dir=args.dir))
    try:
        bench(out, "adc", "int16", 64, 1e6, args.seconds)
        bench(out, "phase", "float32", 64, 2.5e5, args.seconds)
    finally:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
