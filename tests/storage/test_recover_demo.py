"""A real demo run (simulated MKID station) whose root zarr.json is truncated: recover rebuilds it, and the run
opens with its data and its attrs (station snapshot, calibration, status) as they were."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.session import StreamSession
from cryodaq.cli import main as cli_main
from cryodaq.errors import RunDamagedError
from cryodaq.station import load_station_config
from cryodaq.storage import RunStatus, open_run, verify_run

DEMO = Path(__file__).resolve().parents[2] / "stations" / "demo_mkid.yaml"

pytestmark = pytest.mark.slow


def _data_files(path: Path) -> dict[str, str]:
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file() and f.parent != path}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return StreamSession(load_station_config(DEMO), tmp_path_factory.mktemp("runs"), simulate=True).run(1.5).path


@pytest.mark.parametrize("cut", ["in the consolidated metadata", "in the station snapshot"])
def test_truncated_root_of_a_demo_run_is_rebuilt(demo_run: Path, tmp_path: Path, cut: str) -> None:
    path = tmp_path / demo_run.name
    shutil.copytree(demo_run, path)
    before = open_run(path)
    attrs, events = before.attrs, before.events().load()
    phase = before.stream().load()
    files = _data_files(path)
    assert verify_run(path).intact and before.status is RunStatus.COMPLETE and (path / "sweeps" / "iq_loop").is_dir()
    root = path / "zarr.json"
    text = root.read_text()
    at = text.index('"consolidated_metadata"') + 200 if "consolidated" in cut else text.index('"snapshot"') + 500
    root.write_text(text[:at])
    with pytest.raises(RunDamagedError, match="root zarr.json"):
        open_run(path)

    assert cli_main(["recover", str(path)]) == 0
    run = open_run(path)
    rebuilt = dict(run.attrs)
    [entry] = rebuilt.pop("recovered")
    assert entry["rebuilt"][0]["node"] == "(root)"
    if "consolidated" in cut:
        assert rebuilt == attrs  # station snapshot, pipeline calibration, status, times: as written
    else:  # what came before the cut is exact; what followed is listed as lost, not made up
        lost = entry["rebuilt"][0]["lost"]
        assert "part of station" in lost and "config" in lost and rebuilt["config"] == {}
        for key in ("format_version", "run_id", "kind", "status", "interrupted", "started", "ended", "end_reason"):
            assert rebuilt[key] == attrs[key], key
        assert rebuilt["station"]["name"] == attrs["station"]["name"]
    assert run.status is RunStatus.COMPLETE and run.groups == before.groups
    assert _data_files(path) == files  # recover touched no array and no chunk
    after = run.events().load()
    for column in ("t", "channel", "amplitude", "sample_index"):
        np.testing.assert_array_equal(after[column].values, events[column].values)
    np.testing.assert_array_equal(run.stream()["phase"].values, phase["phase"].values)
    assert verify_run(path).intact
