"""End to end: simulated MKID station -> UDP -> pipeline -> Zarr run on disk."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cryodaq.acquisition.session import StreamSession
from cryodaq.errors import SafetyLimitError
from cryodaq.storage import open_run
from cryodaq.station import load_station_config
from cryodaq.station.bringup import station_up

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "stations" / "demo_mkid.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One short demo run shared by the read-back tests; a gap is injected mid-run."""
    out = tmp_path_factory.mktemp("runs")
    session = StreamSession(load_station_config(DEMO), out, simulate=True)

    def inject_gap():
        while session.station is None or session.stats.samples < 2_000_000:
            time.sleep(0.05)
        session.station.components["readout"].write("SIM:FAULT:SKIP 3")

    threading.Thread(target=inject_gap, daemon=True).start()
    summary = session.run(4.0)
    return summary


def test_demo_run_completes_with_pulses_on_every_tone(demo_run):
    run = open_run(demo_run.path)
    assert run.status == "complete"
    assert run.attrs["interrupted"] is False
    events = xr.open_zarr(demo_run.path, group="events")
    assert events["amplitude"].dims == ("event",)
    channels = events["channel"].values
    n_tones = 8
    counts = np.bincount(channels, minlength=n_tones)
    # ~10-20 photons/s per resonator in the simulated world: every tone sees pulses
    assert np.all(counts >= 10), counts
    amp = events["amplitude"].values
    thresholds = np.asarray(run.attrs["pipeline_calibration"]["trigger_threshold"])
    # photon pulses stand far above the 6-sigma threshold; noise triggers are rare
    assert np.mean(amp > 3 * thresholds[channels]) > 0.95
    # event times are UTC ns inside the run, in order of sample index per channel
    t = events["t"].values
    started = np.datetime64(run.attrs["started"].rstrip("Z"), "ns").astype(np.int64)
    assert np.all(t > started - 5_000_000_000) and np.all(t < started + 60_000_000_000)
    assert events["records"].dims == ("event", "sample")


def test_injected_gap_is_recorded_not_stitched(demo_run):
    run = open_run(demo_run.path)
    gaps = run.gaps()
    assert gaps.sizes["gap"] == 1
    assert str(gaps["cause"].values[0]) == "packet_loss"
    n_missing = int(gaps["n_samples"].values[0])
    first_missing = int(gaps["first_sample"].values[0])
    assert n_missing == 3 * 4096
    stream = run.stream("phase")
    idx = stream["sample_index"].values
    step = np.diff(idx)
    nominal = np.median(step)
    jumps = np.flatnonzero(step != nominal)
    # exactly one discontinuity, spanning the missing samples: nothing stitched over
    assert len(jumps) == 1
    j = jumps[0]
    assert idx[j] < first_missing and idx[j + 1] >= first_missing + n_missing
    # the time coordinate follows the sample index across the gap
    dt = (stream["t"].values[j + 1] - stream["t"].values[j]) / (idx[j + 1] - idx[j])
    assert dt == pytest.approx(1e9 / 2.048e6, rel=1e-3)


def test_housekeeping_logged_at_about_1hz(demo_run):
    run = open_run(demo_run.path)
    hk = run.housekeeping("mxc_temperature")
    values = hk["value"].values
    assert 3 <= len(values) <= 7
    assert np.all((values > 0.005) & (values < 0.1))
    assert np.all(np.diff(hk["t"].values) > 0.5e9)


def test_safety_limit_refuses_before_sending():
    with station_up(load_station_config(DEMO)) as live:
        board = live.station.components["readout"]
        before = board.tone_amplitudes()
        with pytest.raises(SafetyLimitError, match=r"readout\.tone_amplitudes"):
            board.tone_amplitudes(np.full(len(before), 0.5))
        np.testing.assert_allclose(board.tone_amplitudes(), before)


def test_noise_spectra_snapshots_are_stored(demo_run):
    spectra = open_run(demo_run.path).spectra()
    psd = spectra["psd"].values
    assert psd.shape[0] >= 1 and psd.shape[1] == 8
    assert np.all(np.isfinite(psd)) and np.all(psd[:, :, 1:] > 0)
    freq = spectra["freq"].values
    assert freq[0] == 0 and freq[-1] == pytest.approx(8000.0)


def test_tes_station_streams_pulses_in_amperes(tmp_path):
    session = StreamSession(load_station_config(ROOT / "stations" / "demo_tes.yaml"), tmp_path, simulate=True)
    summary = session.run(3.0)
    run = open_run(summary.path)
    assert run.status == "complete"
    stream = run.stream("current")
    assert stream["current"].attrs.get("units", run.dataset("stream").attrs["units"]["current"]) == "A"
    events = run.events()
    counts = np.bincount(events["channel"].values, minlength=8)
    assert np.all(counts >= 3), counts  # ~5 X-rays/s per TES
    # the Mn K-alpha line (5.9 keV) of the simulated source: ~8.8 uA pulses
    amp = np.median(events["amplitude"].values)
    assert 7e-6 < amp < 11e-6


def test_a_data_port_taken_after_the_pre_flight_check_is_named_when_the_receiver_binds(tmp_path):
    """The second, real check: the receiver binds before the run is created, and a port taken in between
    is the same one-line error as the pre-flight check's (a stand-in source; the receiver is the real one)."""
    from cryodaq.errors import PortInUseError
    from cryodaq.readout.udp_receiver import UDPReceiver

    class Source:
        def open_receiver(self, host, port, **kwargs):
            return UDPReceiver(host, port, **kwargs)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        port = other.getsockname()[1]
        path = tmp_path / "station.yaml"
        path.write_text(DEMO.read_text().replace("data_port: 0 ", f"data_port: {port} "))
        session = StreamSession(load_station_config(path), tmp_path / "runs", simulate=True)
        with pytest.raises(PortInUseError) as info:
            session._open_receiver(Source())
    assert str(info.value) == (
        f"{path}: cryodaq.readout.data_port: the UDP data receiver of 'readout' cannot listen on UDP port {port} of "
        "127.0.0.1: in use by another program; free it, or set cryodaq.readout.data_port: 0 (any free port; the "
        "board is told where to send)")
    assert not (tmp_path / "runs").exists()
