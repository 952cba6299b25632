"""End to end on the shipped demo_dastard station: the simulated DASTARD triggers TES pulses, cryodaq stores
them; records DASTARD drops or sends out of order (faults injected over its JSON-RPC port) are in gaps/."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.session import StreamSession
from cryodaq.station import load_station_config
from cryodaq.storage import open_run

DEMO = Path(__file__).resolve().parents[2] / "stations" / "demo_dastard.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    session = StreamSession(load_station_config(DEMO), tmp_path_factory.mktemp("runs"), simulate=True)

    def inject_then_stop() -> None:
        deadline = time.monotonic() + 60
        while session.stats.samples < 5 and time.monotonic() < deadline:  # records flow
            time.sleep(0.05)
        time.sleep(3.0)  # past the first TRIGGERRATE windows, which are not checked (more on a loaded machine)
        dastard = session.station.components["dastard"]
        dastard.rpc("Simulation.DropRecords", 3)
        dastard.rpc("Simulation.SwapRecords", 1)
        while session.stats.gaps < 2 and time.monotonic() < deadline:  # the drop is found ~1 s later
            time.sleep(0.05)
        time.sleep(2.0)  # any other gap a loaded machine made may have come first: give the drop its window
        session.request_stop()

    threading.Thread(target=inject_then_stop, daemon=True).start()
    return session.run(30.0)


def test_the_demo_stores_dastards_tes_records_as_events(demo_run):
    run = open_run(demo_run.path)
    assert run.status == "complete"
    ev = run.events()
    assert ev["records"].dtype == np.uint16 and ev["records"].shape[1] == 500
    assert set(ev["channel"].values.tolist()) == {0, 1, 2, 3}
    amp = ev["amplitude"].values  # Mn Kα pulses ≈ 3600 counts at the demo bias (docs/sim-instruments.md)
    assert np.median(amp) == pytest.approx(3600, rel=0.1)
    assert run.housekeeping("dastard_trigger_rate")["value"].values.max() > 10
    assert len(run.housekeeping("mxc_temperature")["value"])
    assert run.attrs["pipeline_calibration"]["source_status"]["STATUS"]["SourceName"] == "SimPulses"


def test_injected_drops_and_swaps_are_reported(demo_run):
    gaps = open_run(demo_run.path).gaps()
    causes = [str(c) for c in gaps["cause"].values]
    n = gaps["n_samples"].values
    assert causes.count("record_out_of_order") == 1
    assert sum(int(k) for c, k in zip(causes, n) if c == "record_dropped") == 3
