"""Reprocessing a real stored run (simulated MKID station, with a gap) reproduces its acquisition."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import xarray as xr

from cryodaq.acquisition.session import StreamSession
from cryodaq.cli import main as cli_main
from cryodaq.errors import DerivedExistsError, StationConfigError
from cryodaq.reprocess import reprocess_run
from cryodaq.analysis import find_line_peaks as line_peaks
from cryodaq.reprocess._run import stored_thresholds
from cryodaq.reprocess.cluster import WORKER_MALLOC_ENV, dask_client, local_cluster
from cryodaq.station import load_station_config
from cryodaq.stop_signals import StopSignals
from cryodaq.storage import open_run
from cryodaq.wire.addresses import is_loopback

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "stations" / "demo_mkid.yaml"
RAW_GROUPS = ("stream", "events", "gaps", "spectra", "housekeeping")
COLUMNS = ("t", "sample_index", "channel", "amplitude", "baseline", "flags")

pytestmark = pytest.mark.slow


def _checksums(path: Path) -> dict[str, str]:
    """sha256 of every file of the raw groups."""
    out = {}
    for group in RAW_GROUPS:
        for f in sorted((path / group).rglob("*")):
            if f.is_file():
                out[str(f.relative_to(path))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s demo run with a gap injected mid-run (so the stream has two segments)."""
    session = StreamSession(load_station_config(DEMO), tmp_path_factory.mktemp("runs"), simulate=True)

    def inject_gap() -> None:
        while session.station is None or session.stats.samples < 2_000_000:
            time.sleep(0.05)
        session.station.components["readout"].write("SIM:FAULT:SKIP 3")

    threading.Thread(target=inject_gap, daemon=True).start()
    return session.run(4.0).path


@pytest.fixture(scope="module")
def raw_before(demo_run: Path) -> tuple[dict[str, str], dict]:
    return _checksums(demo_run), open_run(demo_run).attrs


@pytest.fixture(scope="module")
def cluster2():
    with local_cluster(2) as cluster:
        yield cluster


def _assert_same_events(run_path: Path, label: str) -> None:
    run = open_run(run_path)
    acq, rep = run.events().load(), run.reprocessed(label).load()
    assert acq.sizes["event"] == rep.sizes["event"] > 50
    for col in COLUMNS:
        np.testing.assert_array_equal(rep[col].values, acq[col].values, err_msg=col)
    np.testing.assert_array_equal(rep["records"].values, acq["records"].values)


def _listening(procs: list[psutil.Process]) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for p in procs for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN}


def test_acquisition_config_reproduces_events_with_one_worker_of_a_loopback_cluster(demo_run: Path,
                                                                                   raw_before) -> None:
    """The local Dask cluster ``--workers 1`` starts (``dask_client``) and everything it listens on — the
    scheduler, its dashboard, the worker and its nanny — is on loopback."""
    assert len(open_run(demo_run).gaps()["first_sample"]) == 1
    me = psutil.Process()
    before = _listening([me])
    with dask_client(1, None, 1) as (client, n_workers):
        new = _listening([me, *me.children(recursive=True)]) - before
        assert n_workers == 1 and client.dashboard_link.startswith("http://127.0.0.1:")
        env = next(iter(client.run(lambda: {k: os.environ.get(k) for k in WORKER_MALLOC_ENV}).values()))
        assert env == WORKER_MALLOC_ENV  # not Dask's default trim threshold, which costs 1.6x in chunk time
        result = reprocess_run(demo_run, None, label="one-worker", scheduler=client, progress=False)
    assert len(new) >= 3, new
    assert all(is_loopback(host) for host, _ in new), new
    assert result.workers == 1 and result.n_segments == 2
    _assert_same_events(demo_run, "one-worker")


def test_two_workers_reproduce_events(demo_run: Path, cluster2, raw_before) -> None:
    result = reprocess_run(demo_run, {"chunk_s": 0.25}, label="two-workers", scheduler=cluster2.scheduler_address,
                           progress=False)
    assert result.workers == 2 and result.n_chunks >= result.rows // 4000 > 10
    _assert_same_events(demo_run, "two-workers")


def test_many_chunk_edges_reproduce_events(demo_run: Path, raw_before) -> None:
    """Chunks of 0.02 s (320 samples, a few records long): hundreds of edges, pulses across them."""
    result = reprocess_run(demo_run, {"chunk_s": 0.02}, label="small-chunks", workers=0, progress=False)
    assert result.n_chunks >= result.rows // 320 > 150
    _assert_same_events(demo_run, "small-chunks")


def test_a_stop_signal_stops_reprocessing_and_nothing_is_written(demo_run: Path, raw_before, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM (as systemd or Slurm sends it) ends ``cryodaq reprocess`` as Ctrl-C does: the chunks left are
    cancelled, no output group is written, one line says so, exit status 130."""
    config = tmp_path / "small_chunks.yaml"
    config.write_text("chunk_s: 0.02\n")

    def terminate_once_handled() -> None:
        deadline = time.monotonic() + 60
        while not isinstance(signal.getsignal(signal.SIGTERM), StopSignals) and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_handled, daemon=True).start()
    code = cli_main(["reprocess", str(demo_run), "--config", str(config), "--label", "stopped", "--workers", "0",
                     "-q"])
    err = capsys.readouterr().err
    assert code == 130, err
    assert "SIGTERM: stopping reprocessing cleanly" in err and "Traceback" not in err
    assert re.search(rf"{re.escape(str(demo_run))}: reprocessing stopped after \d+ of \d+ chunks; nothing was "
                     r"written", err), err
    assert "stopped" not in open_run(demo_run).reprocessed_labels
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back


def test_output_group_is_xarray_readable_with_provenance(demo_run: Path, raw_before) -> None:
    reprocess_run(demo_run, {"trigger": {"holdoff_s": 0.003}}, label="provenance", workers=0, progress=False)
    ds = xr.open_zarr(demo_run, group="reprocessed/provenance")  # consolidated metadata was refreshed
    assert ds["amplitude"].dims == ("event",) and ds["records"].dims == ("event", "sample")
    run = open_run(demo_run)
    assert ds.sizes["event"] == run.committed("reprocessed/provenance")
    assert "reprocessed/provenance" in run.groups
    cfg, src = ds.attrs["config"], ds.attrs["source"]
    assert cfg["trigger"]["holdoff_s"] == 0.003 and cfg["trigger"]["record_s"] == 0.004  # the rest: the run's
    assert len(cfg["thresholds"]) == 8
    assert src["run_id"] == run.run_id and src["groups"]["stream/phase"] == run.committed("stream")
    assert len(src["segments"]) == 2 and "cryodaq" in src["software"]
    assert ds.attrs["created"].endswith("Z") and ds.attrs["status"] == "complete"


def _match(ref: np.ndarray, ref_ch: np.ndarray, other: np.ndarray, other_ch: np.ndarray, tol: int) -> np.ndarray:
    """For each ref event, whether ``other`` has one on the same channel within ``tol`` ADC samples."""
    out = np.zeros(ref.size, bool)
    for c in np.unique(ref_ch):
        o = np.sort(other[other_ch == c])
        r = ref[ref_ch == c]
        if o.size:
            pos = np.clip(np.searchsorted(o, r), 1, o.size) - 1
            near = np.minimum(np.abs(o[pos] - r), np.abs(o[np.minimum(pos + 1, o.size - 1)] - r))
            out[ref_ch == c] = near <= tol
    return out


def test_new_thresholds_give_a_subset_or_superset(demo_run: Path, raw_before) -> None:
    run = open_run(demo_run)
    acq = run.events().load()
    # a lower threshold may fire on noise just before a pulse, whose trigger then falls in
    # that hold-off: match within one hold-off (in ADC samples)
    tol = run.attrs["config"]["pipeline"]["trigger"]["holdoff_s"] * 2.048e6
    for sigma, label in ((11.0, "high"), (4.5, "low")):  # most pulses reach well over 11 sigma
        reprocess_run(demo_run, {"trigger": {"threshold_sigma": sigma}}, label=label, workers=0, progress=False)
    high, low = open_run(demo_run).reprocessed("high").load(), open_run(demo_run).reprocessed("low").load()
    assert high.sizes["event"] <= acq.sizes["event"] <= low.sizes["event"]
    # every event at 11 sigma was also seen at 6 sigma; every 6-sigma event also at 4.5 sigma
    # (far lower thresholds fire on noise so often that chains of hold-offs can hide a pulse)
    assert _match(high.sample_index.values, high.channel.values, acq.sample_index.values, acq.channel.values, tol).all()
    assert _match(acq.sample_index.values, acq.channel.values, low.sample_index.values, low.channel.values, tol).all()
    thr_acq = np.asarray(stored_thresholds(run))
    np.testing.assert_allclose(high.attrs["config"]["thresholds"], thr_acq * 11.0 / 6.0, rtol=1e-6)


def _dominant_line_spread(values: np.ndarray, channels: np.ndarray) -> float:
    """Relative robust spread of each channel's most populated amplitude peak, pooled over channels."""
    rel = []
    for c in np.unique(channels):
        v = values[channels == c]
        v = v[np.isfinite(v)]
        if v.size < 20:  # a channel the optimal filter skipped (too few template pulses)
            continue
        peak = line_peaks(v, 1)[0]
        near = v[np.abs(v - peak) < 0.1 * peak] / peak
        rel.append(near - np.median(near))
    r = np.concatenate(rel)
    return float(1.4826 * np.median(np.abs(r)))


def test_optimal_filter_resolves_the_dominant_line_at_least_as_well(demo_run: Path, raw_before) -> None:
    config = {"optimal_filter": {"energy_lines_ev": [1.55], "min_pulses": 10, "template_window": 0.15}}
    reprocess_run(demo_run, config, label="of", workers=0, progress=False)
    ds = open_run(demo_run).reprocessed("of").load()
    clean = ds.flags.values == 0
    ch = ds.channel.values[clean]
    assert len(ds.attrs["config"]["optimal_filter"]["skipped"]) <= 2, ds.attrs["config"]["optimal_filter"]["skipped"]
    of_spread = _dominant_line_spread(ds.of_amplitude.values[clean], ch)
    trig_spread = _dominant_line_spread(ds.amplitude.values[clean], ch)
    assert of_spread <= trig_spread
    skipped = {int(k) for k in ds.attrs["config"]["optimal_filter"]["skipped"]}
    done = np.array([t for t in range(ds.sizes["tone"]) if t not in skipped])
    res = ds.of_resolution.values[done]
    assert np.all(np.isfinite(res)) and np.all(res > 0)
    energy = ds.energy.values[clean]
    assert abs(np.median(energy[np.abs(energy - 1.55) < 0.2]) - 1.55) < 0.03
    assert np.isfinite(ds.chi2.values[clean]).all() and np.isfinite(ds.of_delay_s.values[clean]).all()
    assert ds["of_template"].dims == ("tone", "sample") and ds["of_noise_psd"].dims == ("tone", "freq")
    assert ds.attrs["config"]["optimal_filter"]["n_noise_records"] >= 8 * 100


@pytest.mark.parametrize(("text", "key"), [
    ("trigger:\n  holdof_s: 0.001\n", "trigger.holdof_s"),
    ("trigger:\n  threshold_sigma: -2\n", "trigger.threshold_sigma"),
    ("trigger:\n  presamples_s: 0.01\n", "trigger.presamples_s"),
    ("optimal_filter:\n  energy_lines_ev: [fast]\n", "optimal_filter.energy_lines_ev"),
    ("optimal_filter:\n  align: sideways\n", "optimal_filter.align"),
    ("chunk: 3\n", "chunk"),
    ("threshold: [0.1, 0.2]\n", "threshold"),
])
def test_bad_config_names_file_and_key(demo_run: Path, tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(StationConfigError) as err:
        reprocess_run(demo_run, cfg, label="never", workers=0, progress=False)
    assert str(cfg) in str(err.value) and key in str(err.value)
    assert "never" not in open_run(demo_run).reprocessed_labels


def test_existing_label_is_refused_then_overwritten(demo_run: Path, raw_before) -> None:
    reprocess_run(demo_run, None, label="twice", workers=0, progress=False)
    with pytest.raises(DerivedExistsError, match="reprocessed/twice"):
        reprocess_run(demo_run, None, label="twice", workers=0, progress=False)
    reprocess_run(demo_run, {"trigger": {"threshold_sigma": 9.0}}, label="twice", workers=0, progress=False,
                  overwrite=True)
    assert open_run(demo_run).reprocessed("twice").attrs["config"]["trigger"]["threshold_sigma"] == 9.0


def test_cli(demo_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], raw_before) -> None:
    cfg = tmp_path / "reprocess.yaml"
    cfg.write_text("trigger:\n  threshold_sigma: 7.0\n")
    rc = cli_main(["reprocess", str(demo_run), "--config", str(cfg), "--label", "from-cli", "--workers", "0", "-q"])
    assert rc == 0
    assert capsys.readouterr().out.strip().endswith("reprocessed/from-cli")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trigger: 3\n")
    assert cli_main(["reprocess", str(demo_run), "--config", str(bad), "--workers", "0", "-q"]) == 2


def test_raw_data_is_never_modified(demo_run: Path, raw_before) -> None:
    """Runs last in this module: after every reprocessing above, the raw groups are byte-identical."""
    reprocess_run(demo_run, {"optimal_filter": {}}, label="last", workers=0, progress=False)
    sums, attrs = raw_before
    assert _checksums(demo_run) == sums and len(sums) > 20
    assert open_run(demo_run).attrs == attrs
