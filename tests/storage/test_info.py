"""run_info: the numbers `cryodaq info` prints, counted up to committed lengths."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from cryodaq.storage import RunStatus, RunWriter, run_info


def test_run_info_counts(writer: RunWriter, pat: SimpleNamespace) -> None:
    writer.append_stream("phase", *pat.stream_block(0, 300))
    writer.append_events(pat.event_batch(0, 15))  # channels k % 4 for k = 0..14
    writer.append_gap(10, 25, 1, "packet_loss")
    writer.append_gap(50, 5, 2, "pipeline_overrun", "queue full")
    writer.append_gap(90, 10, 3, "packet_loss")
    for i in range(4):
        writer.append_housekeeping("mxc_temperature", i * 10**9, 0.010 + i / 1000, "K")
    writer.append_housekeeping("still_temperature", 0, 0.8, "K")
    writer.append_spectrum(5, np.arange(3.0), np.zeros((pat.N_CH, 3)))
    writer.commit()
    writer.append_events(pat.event_batch(15, 100))  # never committed: not counted
    writer.append_gap(200, 1000, 4, "packet_loss")

    info = run_info(writer.path)
    assert info.status is RunStatus.RUNNING and info.station == "bench-1" and info.kind == "stream"
    assert info.run_id == writer.path.name.removesuffix(".zarr")
    ph = info.streams["phase"]
    assert (ph.samples, ph.n_channels, ph.sample_rate_hz, ph.units) == (300, pat.N_CH, pat.RATE, "rad")
    assert ph.duration_s == 0.3
    assert info.n_events == 15 and info.events_per_channel == {0: 4, 1: 4, 2: 4, 3: 3}
    assert info.n_gaps == 3 and info.samples_lost_by_cause == {"packet_loss": 35, "pipeline_overrun": 5}
    assert info.samples_lost == 40
    hk = info.housekeeping["mxc_temperature"]
    assert (hk.samples, hk.last_value, hk.last_t_ns, hk.unit) == (4, 0.010 + 3 / 1000, 3 * 10**9, "K")
    assert info.housekeeping["still_temperature"].last_value == 0.8
    assert info.n_spectra == 1
    on_disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(writer.path) for f in fs)
    assert info.size_bytes == on_disk > 0

    text = info.render()
    for expected in ("bench-1", "running", "phase: 300 samples x 4 channels at 1000 Hz", "events        15",
                     "3: 3", "40 samples lost", "packet_loss: 35", "mxc_temperature = 0.013 K"):
        assert expected in text, f"{expected!r} missing from:\n{text}"

    writer.close(interrupted=True, end_reason="operator stop")
    done = run_info(writer.path)
    assert done.status is RunStatus.COMPLETE and done.interrupted and done.n_events == 115
    assert done.duration_s is not None and done.duration_s > 0
    assert "complete (interrupted)" in done.render() and "operator stop" in done.render()


def test_run_info_of_an_empty_run(tmp_path) -> None:
    w = RunWriter.create(tmp_path, station_name="s", station_snapshot={}, config={}, kind="sweep")
    w.close()
    info = run_info(w.path)
    assert (info.kind, info.n_events, info.n_gaps, info.streams, info.housekeeping) == ("sweep", 0, 0, {}, {})
    assert "events        0" in info.render()
