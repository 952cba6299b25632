"""Host time-daemon readers, tested on stored output text (never on this machine's daemon).

The samples follow the formats of chrony 4.x (``chronyc -c tracking``: one CSV line of 14
fields, the system-time field signed, positive when the host is slow) and ntpd 4.2.8
(``ntpq -c rv``: comma-separated ``name=value`` system variables, times in ms).
"""

from __future__ import annotations

import subprocess

import pytest

from cryodaq.timing.host_clock import (
    HostClockMonitor,
    HostClockParseError,
    parse_chronyc_tracking,
    parse_ntpq_rv,
    read_host_clock,
)

CHRONY_CSV = "C0A80101,192.168.1.1,3,1718000000.123456789,0.000001501,-0.000001632,0.000002360,331.898,0.004," \
             "0.154,0.373169,0.024780,64.2,Normal\n"
CHRONY_UNSYNCED = "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000," \
                  "1.000000000,0.0,Not synchronised\n"
NTPQ_RV = (
    'associd=0 status=0615 leap_none, sync_ntp, 1 event, clock_sync,\n'
    'version="ntpd 4.2.8p15@1.3728-o Wed Feb 16 17:13:02 UTC 2022 (1)",\n'
    'processor="x86_64", system="Linux/5.15.0-91-generic", leap=00, stratum=2,\n'
    'precision=-24, rootdelay=20.183, rootdisp=33.614, refid=192.0.2.17,\n'
    'reftime=e9591d3e.3bd2fb2f  Tue, Jan 16 2024  9:40:14.233,\n'
    'clock=e9591e55.ab9a1a25  Tue, Jan 16 2024  9:44:53.670, peer=38477, tc=10,\n'
    'mintc=3, offset=-0.292436, frequency=-6.870, sys_jitter=0.486131,\n'
    'clk_jitter=0.342, clk_wander=0.021\n'
)


def test_chrony_tracking_csv():
    r = parse_chronyc_tracking(CHRONY_CSV)
    assert r.daemon == "chrony" and r.stratum == 3 and r.reference == "192.168.1.1" and r.synchronized
    assert r.offset_s == pytest.approx(-1.501e-6)  # "1.501 us slow of NTP time": the host is behind
    assert r.error_s == pytest.approx(1.501e-6 + 0.024780 + 0.373169 / 2)


def test_chrony_not_synchronised():
    r = parse_chronyc_tracking(CHRONY_UNSYNCED)
    assert not r.synchronized and r.leap == "Not synchronised"


def test_ntpq_system_variables():
    r = parse_ntpq_rv(NTPQ_RV)
    assert r.daemon == "ntpd" and r.stratum == 2 and r.reference == "192.0.2.17" and r.synchronized
    assert r.offset_s == pytest.approx(0.292436e-3)  # reference 0.29 ms behind the host: the host is ahead
    assert r.error_s == pytest.approx((0.292436 + 33.614 + 20.183 / 2) * 1e-3)


@pytest.mark.parametrize("text,parse", [("506 Cannot talk to daemon\n", parse_chronyc_tracking),
                                        ("ntpq: read: Connection refused\n", parse_ntpq_rv)])
def test_output_in_another_format_is_refused_clearly(text, parse):
    with pytest.raises(HostClockParseError, match="expected|no offset"):
        parse(text)


def test_reader_prefers_chrony_and_falls_back_to_ntpd():
    calls = []

    def runner(cmd):
        calls.append(cmd[0])
        if cmd[0].endswith("chronyc"):
            raise subprocess.CalledProcessError(1, cmd, "506 Cannot talk to daemon")
        return NTPQ_RV

    reading, how = read_host_clock(which=lambda tool: f"/usr/bin/{tool}", runner=runner)
    assert reading is not None and reading.daemon == "ntpd" and how == "ntpq -c rv"
    assert calls == ["/usr/bin/chronyc", "/usr/bin/ntpq"]


def test_no_daemon_is_said_and_not_asked_again():
    asked = []

    def reader():
        asked.append(1)
        return read_host_clock(which=lambda tool: None)

    monitor = HostClockMonitor(reader)
    assert monitor.read() is None and monitor.read() is None
    assert len(asked) == 1
    summary = monitor.summary()
    assert summary["daemon"] is None and "no chronyc on PATH" in summary["detail"] and "ntpq" in summary["detail"]


def test_monitor_summary_keeps_the_worst():
    readings = iter([CHRONY_CSV, CHRONY_CSV.replace("0.000001501", "-0.002000000")])
    monitor = HostClockMonitor(lambda: (parse_chronyc_tracking(next(readings)), "chronyc -c tracking"))
    monitor.read(), monitor.read()
    s = monitor.summary()
    assert s["readings"] == 2 and s["offset_s"] == pytest.approx(2e-3) and s["max_abs_offset_s"] == pytest.approx(2e-3)
