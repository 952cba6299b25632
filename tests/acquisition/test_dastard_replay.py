"""End to end: a DASTARD written by the tests (FakeDastard, from DASTARD's documented format) replays records;
a station names it like any instrument; the StreamSession stores them in a Zarr run byte for byte, with trigger
times and frame indices, reports out-of-order and dropped records in gaps/, and keeps the status in housekeeping.
The records of the real DASTARD LJH files in ../shared/data replay the same way."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from cryodaq.acquisition.session import RunSummary, StreamSession
from cryodaq.station import load_station_config
from cryodaq.storage import open_run, read_ljh

NS = 1_000_000_000

pytestmark = pytest.mark.slow


def _station(tmp_path: Path, address: str) -> Path:
    doc = {
        "instruments": {"dastard": {"type": "cryodaq.instruments.DastardPublisher", "address": address,
                                    "init": {"drop_check_grace_s": 0.2}}},
        "cryodaq": {"name": "dastard_replay", "readout": {"instrument": "dastard"},
                    "pipeline": {"block_packets": 64, "store_stream": False, "trigger": {"polarity": 1}},
                    "simulation": {"enabled": False}},
    }
    path = tmp_path / "dastard_replay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _replay(tmp_path: Path, fake, publish: Callable[[int], None], done: Callable[[StreamSession], bool],
            timeout: float = 30.0) -> RunSummary:
    """Run a session on ``fake``; ``publish(t_subscribed_ns)`` runs once the receiver has subscribed, and the
    session is stopped when ``done(session)`` holds."""
    session = StreamSession(load_station_config(_station(tmp_path, fake.address)), tmp_path / "runs",
                            simulate=False)
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            assert fake.wait_for_subscription(timeout=timeout), "the session never subscribed"
            publish(time.time_ns())
            deadline = time.monotonic() + timeout
            while not done(session) and time.monotonic() < deadline:
                time.sleep(0.05)
        except BaseException as exc:  # surfaced below, after the session has stopped
            failure.append(exc)
        finally:
            session.request_stop()

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    summary = session.run(None)
    thread.join(timeout=10)
    if failure:
        raise failure[0]
    return summary


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, fake_dastard_module):
    """Records of 3 channels with a pulse each, one out-of-order and one repeated frame, 2 records DASTARD
    counted but never sent, and status messages."""
    tmp_path = tmp_path_factory.mktemp("dastard")
    fake = fake_dastard_module(["chan1", "chan2", "chan3"], nsamples=32, npresamp=8, period_s=8e-6)
    rng = np.random.default_rng(7)
    sent: list[tuple[int, int, int, np.ndarray]] = []  # (channel, frame, t_ns, samples)

    def publish(t_sub: int) -> None:
        hi = t_sub + 5 * NS // 2  # the TRIGGERRATE window (hi - 1 s, hi] holds the records
        frames = {0: [10, 20, 30, 40], 1: [15, 25, 5, 35], 2: [12, 22, 22, 42]}  # ch1: 5 < 25; ch2: 22 repeats
        for k in range(4):
            for ch in range(3):
                frame = frames[ch][k]
                samples = (20000 + rng.integers(-20, 21, 32)).astype(np.uint16)
                samples[8:14] += np.array([900, 1400, 1100, 800, 500, 300], np.uint16) * (ch + 1)
                t_ns = hi - NS + 1000 + frame * 8000
                fake.send_record(ch, samples, t_ns=t_ns, frame=frame)
                sent.append((ch, frame, t_ns, samples))
        # the first TRIGGERRATE after subscribing is not checked; windows are checked from 1 s after its end
        fake.send_status("TRIGGERRATE", {"HiTime": _go_time(hi - 2 * NS), "Duration": NS, "CountsSeen": [0, 0, 0]})
        fake.send_status("STATELABEL", "CALIBRATION")
        time.sleep(0.3)  # the status socket is not ordered with the records: as DASTARD's
        fake.send_status("TRIGGERRATE", {"HiTime": _go_time(hi), "Duration": NS, "CountsSeen": [4, 4, 6]})

    summary = _replay(tmp_path, fake, publish, lambda s: s.stats.samples >= 12 and s.stats.gaps >= 3)
    return summary, sent


def _go_time(t_ns: int) -> str:
    from datetime import UTC, datetime

    seconds, ns = divmod(t_ns, NS)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def test_replayed_records_are_stored_byte_for_byte_in_arrival_order(synthetic_run):
    summary, sent = synthetic_run
    run = open_run(summary.path)
    assert run.status == "complete" and summary.stats.sample_unit == "records"
    ev = run.events()
    records = ev["records"]
    assert records.dtype == np.uint16 and records.attrs == {"presamples": 8, "sample_rate_hz": pytest.approx(125000)}
    assert records.values.tobytes() == b"".join(s.tobytes() for *_, s in sent)
    assert ev["channel"].values.tolist() == [c for c, *_ in sent]
    assert ev["sample_index"].values.tolist() == [f for _, f, *_ in sent]
    assert ev["t"].values.tolist() == [t for _, _, t, _ in sent]
    assert np.all(ev["sample_dtype"].values == 3) and ev["sample_period_s"].values[0] == np.float32(8e-6)
    # amplitude: the pulse above the presample mean, as the trigger measures it
    assert np.all(np.abs(ev["amplitude"].values / (1400 * (ev["channel"].values + 1)) - 1) < 0.05)
    assert "stream" not in run.groups  # a records source has no timestream


def test_out_of_order_and_dropped_records_are_in_gaps(synthetic_run):
    summary, _ = synthetic_run
    gaps = open_run(summary.path).gaps()
    causes, details = [str(c) for c in gaps["cause"].values], [str(d) for d in gaps["detail"].values]
    found = sorted(zip(causes, gaps["first_sample"].values.tolist(), gaps["n_samples"].values.tolist()))
    assert found == [("record_dropped", -1, 2), ("record_out_of_order", 5, 0), ("record_out_of_order", 22, 0)]
    detail = dict(zip(causes, details))
    assert "chan3 (index 2)" in detail["record_dropped"] and "6 triggers" in detail["record_dropped"]


def test_dastards_status_lands_in_housekeeping_and_run_attrs(synthetic_run):
    summary, _ = synthetic_run
    run = open_run(summary.path)
    rate = run.housekeeping("dastard_trigger_rate")
    assert rate["value"].values.tolist() == [0.0, 14.0] and rate.attrs["unit"] == "Hz"
    assert run.housekeeping("trigger_rate_chan3")["value"].values.tolist() == [0.0, 6.0]
    cal = run.attrs["pipeline_calibration"]
    assert [label for _, label in cal["state_labels"]] == ["CALIBRATION"]
    assert cal["record_length"] == 32 and cal["presamples"] == 8 and cal["records_per_channel"] == [4, 4, 4]
    assert cal["source_status"]["CHANNELNAMES"] == ["chan1", "chan2", "chan3"]


@pytest.mark.parametrize("name", ["dastard_tdm_pulses_chan1.ljh", "dastard_umux_noise_chan4102.ljh"])
def test_dastards_own_records_replay_byte_for_byte(shared_data, fake_dastard, tmp_path, name):
    ljh = read_ljh(shared_data / name)
    fake = fake_dastard([f"chan{ljh.channel}"], nsamples=ljh.n_samples, npresamp=ljh.presamples,
                        period_s=ljh.timebase_s)
    t_ns, frames = ljh.t_ns, ljh.sample_index

    def publish(_: int) -> None:
        for i in range(ljh.n_records):
            fake.send_record(0, np.asarray(ljh.samples[i]), t_ns=int(t_ns[i]), frame=int(frames[i]))

    summary = _replay(tmp_path, fake, publish, lambda s: s.stats.samples >= ljh.n_records)
    ev = open_run(summary.path).events()
    raw = Path(ljh.path).read_bytes()[ljh.header_bytes:]
    prefix = {(2, 1): 6, (2, 2): 16}[ljh.version_tuple]
    record_bytes = prefix + 2 * ljh.n_samples
    originals = b"".join(raw[i * record_bytes + prefix:(i + 1) * record_bytes] for i in range(ljh.n_records))
    assert ev.sizes["event"] == ljh.n_records
    assert ev["records"].values.tobytes() == originals  # the file's own sample bytes
    assert ev["t"].values.tolist() == t_ns.tolist() and ev["sample_index"].values.tolist() == frames.tolist()
    assert ev["records"].attrs["presamples"] == ljh.presamples
    assert not open_run(summary.path).gaps().sizes["gap"]
