"""DastardReceiver against a DASTARD written by the tests (FakeDastard): records arrive exactly, the 2-byte
prefix filters channels, out-of-order and dropped records are reported, the queue never blocks."""

from __future__ import annotations

import queue
import time

import numpy as np

from cryodaq.readout import DastardReceiver, RecordBlock, TriggerRateCheck
from cryodaq.wire.dastard import format_go_time

T0 = 1_800_000_000_000_000_000
NS = 1_000_000_000


def _drain(rx: DastardReceiver, n_records: int, timeout: float = 10.0) -> list[RecordBlock]:
    """Blocks until ``n_records`` records arrived (or the timeout)."""
    blocks, got = [], 0
    deadline = time.monotonic() + timeout
    while got < n_records and time.monotonic() < deadline:
        try:
            block = rx.blocks.get(timeout=0.2)
        except queue.Empty:
            continue
        assert block is not None
        blocks.append(block)
        got += block.n_records
    return blocks


def _subscribed(fake, rx: DastardReceiver) -> list[bytes]:
    rx.start()
    rx.subscribe()
    prefixes = fake.wait_for_subscription()
    assert prefixes, "the receiver never subscribed"
    return prefixes


# --------------------------------------------------------------------------- TriggerRateCheck
def _rate(hi_ns: int, counts: list[int]) -> dict:
    return {"HiTime": format_go_time(hi_ns), "Duration": NS, "CountsSeen": counts}


def test_trigger_counts_above_the_records_received_are_reported_as_dropped():
    check = TriggerRateCheck([0, 1], grace_s=0.5, margin_ns=1000)
    check.subscribed()
    check.trigger_rate(_rate(T0, [9, 9]), arrived=0.0)  # skipped (it may straddle); windows count from T0 + 1 s
    for t in (T0 + 1_200_000_000, T0 + 1_500_000_000, T0 + 2 * NS + 500):  # the last within the edge margin
        check.record(0, t)
    check.record(1, T0 + 1_100_000_000)
    check.record(2, T0 + 1_100_000_000)  # not subscribed: ignored
    check.trigger_rate(_rate(T0 + 2 * NS, [3, 4, 8]), arrived=10.0)
    assert check.due(now=10.2) == []  # within the grace time: its records may still be on the way
    gaps = check.due(now=10.6, channel_names=["chan1", "chan2"])
    assert [(g.cause, g.n_samples, g.first_sample, g.t_ns) for g in gaps] == [
        ("record_dropped", 3, -1, T0 + 2 * NS)]
    assert "chan2 (index 1)" in gaps[0].detail and "4 triggers" in gaps[0].detail and "1 records" in gaps[0].detail
    # totals carry over: a surplus (DASTARD does not count group-trigger secondaries) is no gap, and the
    # loss already reported is not reported again
    for t in range(4):
        check.record(0, T0 + 2 * NS + 10_000 + t)
    check.trigger_rate(_rate(T0 + 3 * NS, [2, 0]), arrived=11.0)
    assert check.due(now=12.0) == [] and check.windows_checked == 2
    check.trigger_rate(_rate(T0 + 4 * NS, [0, 2]), arrived=12.0)
    gaps = check.due(now=13.0)
    assert [(g.n_samples, "index 1" in g.detail) for g in gaps] == [(2, True)]


def test_windows_before_the_subscription_are_not_checked():
    check = TriggerRateCheck(None, grace_s=0.0)
    check.trigger_rate(_rate(T0 + NS, [5]), arrived=0.0)
    check.trigger_rate(_rate(T0 + 2 * NS, [5]), arrived=0.0)
    assert check.due(now=1.0) == [] and check.windows_checked == 0  # not subscribed yet
    check.subscribed()
    check.trigger_rate(_rate(T0 + 3 * NS, [5]), arrived=1.0)  # skipped (first after subscribing)
    check.trigger_rate(_rate(T0 + 4 * NS, [5]), arrived=1.0)  # (T0 + 3 s, T0 + 4 s]: before the start, skipped
    check.trigger_rate(_rate(T0 + 5 * NS, [1]), arrived=1.0)  # (T0 + 4 s, T0 + 5 s]: checked
    gaps = check.due(now=2.0)
    assert check.start_ns == T0 + 4 * NS and check.windows_checked == 1 and [g.n_samples for g in gaps] == [1]


# --------------------------------------------------------------------------- the receiver
def test_records_arrive_byte_for_byte_with_times_frames_and_status(fake_dastard):
    fake = fake_dastard(["chan1", "chan2", "chan3"], nsamples=64, npresamp=16, period_s=4e-6)
    rx = DastardReceiver(fake.address, records_per_block=8, channel_names=fake.channel_names)
    try:
        assert _subscribed(fake, rx) == [b""]  # every channel
        rng = np.random.default_rng(1)
        sent = []
        for k in range(20):
            ch = k % 3
            samples = rng.integers(0, 65536, 64).astype(np.uint16)
            fake.send_record(ch, samples, t_ns=T0 + k * 1000, frame=1000 + k)
            sent.append((ch, samples))
        fake.send_status("ALIVE", {"Running": True, "Time": 2.0, "DataMB": 1.0})
        blocks = _drain(rx, 20)
        deadline = time.monotonic() + 5
        status = [m for b in blocks for m in b.status]
        while not status and time.monotonic() < deadline:
            try:
                status += [m for m in (rx.blocks.get(timeout=0.2) or RecordBlock.empty()).status]
            except queue.Empty:
                pass
    finally:
        rx.stop()
    samples = np.concatenate([b.samples for b in blocks])
    assert samples.dtype == np.uint16 and samples.tobytes() == b"".join(s.tobytes() for _, s in sent)
    assert np.concatenate([b.channel for b in blocks]).tolist() == [c for c, _ in sent]
    assert np.concatenate([b.frame for b in blocks]).tolist() == list(range(1000, 1020))
    assert np.concatenate([b.t_ns for b in blocks]).tolist() == [T0 + k * 1000 for k in range(20)]
    assert all(b.presamples == 16 for b in blocks) and max(b.n_records for b in blocks) <= 8
    assert np.allclose(np.concatenate([b.sample_period_s for b in blocks]), 4e-6)
    assert not any(g for b in blocks for g in b.gaps)
    assert [m.topic for m in status] == ["ALIVE"] and status[0].payload["DataMB"] == 1.0
    assert rx.stats.packets == rx.stats.samples == 20 and rx.stats.gaps == 0


def test_the_two_byte_prefix_subscribes_only_the_chosen_channels(fake_dastard):
    names = [f"chan{k}" for k in range(300)]
    fake = fake_dastard(names, nsamples=8, npresamp=2, period_s=1e-5)
    rx = DastardReceiver(fake.address, channels=[1], records_per_block=4)
    try:
        assert _subscribed(fake, rx) == [b"\x01\x00"]
        for k, ch in enumerate([0, 1, 256, 2, 1, 257, 1]):  # 256 = b"\x00\x01": only its second byte differs
            fake.send_record(ch, np.full(8, k, np.uint16), t_ns=T0 + k, frame=k)
        blocks = _drain(rx, 3)
        time.sleep(0.3)
    finally:
        rx.stop()
    channels = np.concatenate([b.channel for b in blocks] + [b.channel for b in iter(rx.blocks.get_nowait, None)])
    assert channels.tolist() == [1, 1, 1]


def test_out_of_order_and_repeated_frames_are_reported_and_kept_in_arrival_order(fake_dastard):
    fake = fake_dastard(["chan1", "chan2"], nsamples=8, npresamp=2, period_s=1e-5)
    rx = DastardReceiver(fake.address, channel_names=fake.channel_names, records_per_block=64, max_latency_s=0.1)
    frames = [(0, 100), (1, 50), (0, 300), (0, 200), (1, 60), (0, 300), (0, 400)]
    try:
        _subscribed(fake, rx)
        for ch, frame in frames:
            fake.send_record(ch, np.full(8, frame, np.uint16), t_ns=T0 + frame, frame=frame)
        blocks = _drain(rx, len(frames))
    finally:
        rx.stop()
    assert [(int(c), int(f)) for b in blocks for c, f in zip(b.channel, b.frame)] == frames
    gaps = [g for b in blocks for g in b.gaps]
    assert [(g.cause, g.first_sample, g.n_samples) for g in gaps] == [
        ("record_out_of_order", 200, 0), ("record_out_of_order", 300, 0)]
    assert "chan1 (index 0): trigger frame 200 is below frame 300" in gaps[0].detail
    assert "frame 300 repeats frame 300" in gaps[1].detail
    assert rx.stats.out_of_order == 2


def test_records_dastard_counted_but_never_sent_become_a_dropped_gap(fake_dastard):
    fake = fake_dastard(["chan1"], nsamples=8, npresamp=2, period_s=1e-5)
    rx = DastardReceiver(fake.address, records_per_block=64, max_latency_s=0.05, drop_check_grace_s=0.1)
    try:
        _subscribed(fake, rx)
        fake.send_status("TRIGGERRATE", _rate(T0, [1]))  # the first one is not checked: windows from T0 + 1 s
        hi = T0 + 2 * NS
        for k in range(3):  # DASTARD will say 5 triggers in (hi - 1 s, hi]: 2 never arrive
            fake.send_record(0, np.zeros(8, np.uint16), t_ns=hi - NS + 1000 * (k + 1), frame=k)
        time.sleep(0.2)
        fake.send_status("TRIGGERRATE", _rate(hi, [5]))
        deadline, gaps = time.monotonic() + 5, []
        while not gaps and time.monotonic() < deadline:
            try:
                block = rx.blocks.get(timeout=0.2)
            except queue.Empty:
                continue
            gaps += [g for g in block.gaps if g.cause == "record_dropped"]
    finally:
        rx.stop()
    assert [(g.n_samples, g.t_ns) for g in gaps] == [(2, hi)]
    assert rx.stats.lost_packets == 2


def test_a_full_queue_drops_batches_as_counted_gaps_and_never_blocks(fake_dastard):
    fake = fake_dastard(["chan1"], nsamples=8, npresamp=2, period_s=1e-5)
    rx = DastardReceiver(fake.address, records_per_block=2, queue_blocks=2)
    try:
        _subscribed(fake, rx)
        for k in range(20):
            fake.send_record(0, np.full(8, k, np.uint16), t_ns=T0 + k, frame=k)
        fake.send_record(0, np.zeros(8, np.uint16)[:7], t_ns=T0, frame=99, presamples=9)  # 9 presamples of 7
        deadline = time.monotonic() + 5
        while rx.stats.packets < 21 and time.monotonic() < deadline:
            time.sleep(0.05)
        kept = [rx.blocks.get(timeout=1) for _ in range(2)]  # the queue held two batches meanwhile
    finally:
        rx.stop(drain_s=0.5)
    rest = []
    while True:
        block = rx.blocks.get(timeout=5)
        if block is None:
            break
        rest.append(block)
    received = sum(b.n_records for b in kept + rest)
    gaps = [g for b in kept + rest for g in b.gaps]
    overflow = [g for g in gaps if g.cause == "pipeline_overflow"]
    assert rx.stats.dropped_blocks > 0 and sum(g.n_samples for g in overflow) == rx.stats.dropped_samples
    assert received + rx.stats.dropped_samples == 20  # every record is either delivered or counted as dropped
    assert [g.cause for g in gaps if g.cause == "bad_record"] == ["bad_record"] and rx.stats.bad_packets == 1
    assert "9 presamples in a 7-sample record" in next(g.detail for g in gaps if g.cause == "bad_record")


def test_record_times_stay_bounded_without_trigger_counts_and_no_false_drop_follows():
    check = TriggerRateCheck([0], grace_s=0.0)
    check.subscribed()
    check.trigger_rate(_rate(T0, [0]), arrived=0.0)  # checks would start at T0 + 1 s
    for k in range(120_000):  # 2 minutes at 1 kHz and no TRIGGERRATE meanwhile (a silent status port)
        check.record(0, T0 + k * 1_000_000)
    assert len(check._times[0]) <= 100_001  # noqa: SLF001 - the bound is the point
    check.trigger_rate(_rate(T0 + 2 * NS, [1000]), arrived=0.0)  # reaches back before the pruned records
    assert check.due(now=1.0) == [] and check.windows_checked == 0
    check.trigger_rate(_rate(T0 + 120 * NS, [999]), arrived=0.0)  # within what is kept: checked, all there
    assert check.due(now=1.0) == [] and check.windows_checked == 1
