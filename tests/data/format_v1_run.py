"""Writes tests/data/format_v1_run.zip: a small run in format version 1, made by cryodaq before the
integrity work (commit f49e837: no chunk checksums, fill value 0, chunks equal to the fill value not
written). Kept to regenerate the file; run it with that version of cryodaq on the path:

    git archive f49e837 | tar -x -C /tmp/cryodaq-v1
    PYTHONPATH=/tmp/cryodaq-v1 python tests/data/format_v1_run.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from cryodaq.storage import RunWriter
from cryodaq.storage.format import FORMAT_VERSION

assert FORMAT_VERSION == 1, "run this with cryodaq of format version 1 (see the docstring)"

out = Path(tempfile.mkdtemp())
w = RunWriter.create(out, station_name="bench-1", station_snapshot={}, config={"pipeline": {"n_tones": 4}},
                     run_id="v1run", catalog=False)
w.declare_stream("phase", n_channels=4, sample_rate_hz=1000.0, units="rad", chunk_time=64,
                 channel_coords={"channel": np.arange(10, 14), "tone_frequency_hz": 4e9 + 1e6 * np.arange(4)})
si = np.arange(300, dtype=np.int64)
w.append_stream("phase", (si[:, None] + np.arange(4)[None, :] / 8).astype(np.float32), si,
                1_700_000_000_000_000_000 + si * 1000)
k = np.arange(40)
w.append_events({"t": 1_700_000_000_000_000_000 + 10_000 * k, "sample_index": 10 * k, "channel": 10 + k % 4,
                 "amplitude": k.astype(np.float32), "baseline": np.full(40, 0.5, np.float32)})
w.append_gap(100, 5, 1_700_000_000_000_100_000, "packet_loss", "seq 7..8")
for i in range(3):
    w.append_housekeeping("mxc_temperature", 1_700_000_000_000_000_000 + i * 10**9, 0.010 + i / 1000, "K")
w.append_spectrum(1_700_000_000_000_000_000, np.arange(5.0), np.ones((4, 5)), units="rad^2/Hz")
w.write_sweep("vna", {"frequency": np.linspace(4e9, 5e9, 7)}, {"s21": np.arange(7) * (1 + 1j)})
w.close()
zipped = shutil.make_archive(str(Path(__file__).with_suffix("")), "zip", out, "v1run.zarr")
shutil.rmtree(out)
print(zipped)
