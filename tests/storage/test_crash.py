"""Crash safety: a writer killed with SIGKILL leaves a run readable up to its committed lengths."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from cryodaq.storage import RunStatus, RunWriter, open_run, recover_run
from cryodaq.storage._liveness import utc_now_iso, writer_alive, writer_identity

N_CH, BLOCK, EV = 4, 500, 7

# The child writes as fast as it can: every loop appends a block to each group and commits.
# Small stream chunks (300 rows for 500-row blocks) make most commits rewrite a partial chunk.
CHILD = f"""
import sys
import numpy as np
from cryodaq.storage import RunWriter
w = RunWriter.create(sys.argv[1], station_name="kill", station_snapshot={{}}, config={{}}, run_id="killed")
w.declare_stream("phase", n_channels={N_CH}, sample_rate_hz=1e4, units="rad", chunk_time=300)
for it in range(1_000_000):
    si = np.arange(it * {BLOCK}, (it + 1) * {BLOCK}, dtype=np.int64)
    w.append_stream("phase", (si[:, None] + np.arange({N_CH}) / 8).astype(np.float32), si, si * 1000)
    e = np.arange(it * {EV}, (it + 1) * {EV})
    w.append_events({{"t": e * 1000, "sample_index": e * 10, "channel": e % {N_CH},
                     "amplitude": e.astype(np.float32), "energy": np.where(e % 2, e, np.nan).astype(np.float32)}})
    w.append_housekeeping("mxc_temperature", it * 10**9, float(it), "K")
    if it % 3 == 0:
        w.append_gap(it, it + 1, it * 7, "packet_loss" if it % 2 else "pipeline_overrun", f"detail {{it}}")
    w.commit()
    if it == 0:
        print("ready", flush=True)
"""


def _verify(path: Path) -> None:
    """Every group, up to its committed length, holds exactly the child's pattern."""
    run = open_run(path)
    assert run.stored_status is RunStatus.RUNNING
    assert run.status is RunStatus.CRASHED

    n = run.committed("stream")
    assert n >= BLOCK and n % BLOCK == 0
    st = run.stream("phase").load()
    si = np.arange(n)
    np.testing.assert_array_equal(st["sample_index"].values, si)
    np.testing.assert_array_equal(st["t"].values, si * 1000)
    np.testing.assert_array_equal(st["phase"].values, (si[:, None] + np.arange(N_CH) / 8).astype(np.float32))

    m = run.committed("events")
    ev = run.events().load()
    e = np.arange(m)
    assert ev.sizes["event"] == m and m % EV == 0
    np.testing.assert_array_equal(ev["t"].values, e * 1000)
    np.testing.assert_array_equal(ev["sample_index"].values, e * 10)
    np.testing.assert_array_equal(ev["channel"].values, e % N_CH)
    np.testing.assert_array_equal(ev["amplitude"].values, e.astype(np.float32))
    np.testing.assert_array_equal(ev["energy"].values, np.where(e % 2, e, np.nan).astype(np.float32))
    assert np.isnan(ev["chi2"].values).all() and (ev["flags"].values == 0).all()

    hk = run.housekeeping("mxc_temperature").load()
    h = len(hk["value"])
    np.testing.assert_array_equal(hk["value"].values, np.arange(h, dtype=float))
    np.testing.assert_array_equal(hk["t"].values, np.arange(h) * 10**9)

    gaps = run.gaps().load()
    its = np.arange(0, 3 * len(gaps["t"]), 3)
    np.testing.assert_array_equal(gaps["first_sample"].values, its)
    np.testing.assert_array_equal(gaps["n_samples"].values, its + 1)
    assert [str(c) for c in gaps["cause"].values] == ["packet_loss" if i % 2 else "pipeline_overrun" for i in its]
    assert [str(d) for d in gaps["detail"].values] == [f"detail {i}" for i in its]

    # Groups commit in order gaps, events, housekeeping, stream (what describes the stream first): the
    # stream never leads what describes it, and each group is at most one commit ahead of the next.
    commits = n // BLOCK
    assert commits <= m // EV <= commits + 1
    assert m // EV - 1 <= h <= m // EV


def test_sigkill_at_random_moments_leaves_committed_data_intact(tmp_path: Path) -> None:
    rng = np.random.default_rng(20240611)
    for i, delay in enumerate([0.0, *rng.uniform(0.02, 0.6, size=3)]):
        out = tmp_path / f"k{i}"
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            pytest.fail(f"writer child did not start: {proc.communicate()[1]}")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        path = out / "killed.zarr"
        _verify(path)
        info = recover_run(path)
        assert info.stored_status is RunStatus.CRASHED and info.status is RunStatus.CRASHED
        again = open_run(path)
        assert again.stored_status is RunStatus.CRASHED and "stopped without closing" in again.attrs["end_reason"]
        assert info.n_events == again.committed("events") and not list(path.rglob("*.partial"))
        assert info.streams["phase"].samples == again.committed("stream")


def test_writer_alive_rules() -> None:
    me = writer_identity()
    assert writer_alive(me, stale_after_s=60)
    assert not writer_alive({**me, "pid_started": me["pid_started"] - 1000}, stale_after_s=60)  # pid reused
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not writer_alive({**me, "pid": int(done.stdout)}, stale_after_s=60)
    elsewhere = {"host": "another-host.invalid", "pid": 1, "heartbeat": utc_now_iso()}
    assert writer_alive(elsewhere, stale_after_s=60)
    assert not writer_alive({**elsewhere, "heartbeat": "2020-01-01T00:00:00.000000Z"}, stale_after_s=60)


def test_live_run_stays_running_and_stale_foreign_run_is_crashed(tmp_path: Path) -> None:
    w = RunWriter.create(tmp_path, station_name="s", station_snapshot={}, config={}, run_id="live")
    w.append_housekeeping("x", 0, 1.0, "K")
    w.commit()
    assert open_run(w.path, mark_crashed=True).status is RunStatus.RUNNING
    info = recover_run(w.path)
    assert info.stored_status is RunStatus.RUNNING and "still alive" in info.notes[0]

    root = zarr.open_group(w.path, mode="r+", use_consolidated=False)  # as if written on another host
    meta = dict(root.attrs["cryodaq"], host="another-host.invalid", heartbeat="2020-01-01T00:00:00.000000Z")
    root.attrs["cryodaq"] = meta
    run = open_run(w.path)
    assert run.status is RunStatus.CRASHED and run.stored_status is RunStatus.RUNNING  # reading changes nothing
    marked = open_run(w.path, mark_crashed=True)
    assert marked.stored_status is RunStatus.CRASHED and marked.attrs["ended"] == "2020-01-01T00:00:00.000000Z"
    assert open_run(w.path).housekeeping("x")["value"].values.tolist() == [1.0]
