"""``cryodaq analyze`` on synthetic runs whose truth is known: a drifting, saturating X-ray TES with pile-up
(Mn Kα/Kβ) and an MKID with two optical lines (Gaussian), both written through the run writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cryodaq.analysis import analyze_run, get_line, parse_analysis_config
from cryodaq.cli import main as cli_main
from cryodaq.errors import DerivedExistsError, StationConfigError
from cryodaq.storage import RunWriter, open_run

N_PER_CHANNEL = 3000
FWHM_EV = 3.0
DRIFT = 2e-3  # gain change per unit of pretrigger mean
E_SAT = 20_000.0  # A = A_SAT tanh(E / E_SAT): a saturating detector


def _pulses(amps: np.ndarray, baseline: np.ndarray, rng: np.random.Generator, n: int = 128, pre: int = 32,
            second: np.ndarray | None = None) -> np.ndarray:
    t = np.arange(n) - pre
    shape = np.where(t >= 0, np.exp(-t / 20.0) - np.exp(-t / 3.0), 0.0)
    shape /= shape.max()
    rec = baseline[:, None] + amps[:, None] * shape[None, :] + rng.normal(0, 0.05, (len(amps), n))
    if second is not None:  # pile-up: a second pulse 40 samples later
        rec[second] += 0.5 * amps[second, None] * np.roll(shape, 40)[None, :]
    return rec.astype(np.float32)


@pytest.fixture(scope="module")
def tes_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    rng = np.random.default_rng(2024)
    ka, kb = get_line("MnKAlpha"), get_line("MnKBeta")
    cols: dict[str, list] = {k: [] for k in ("t", "sample_index", "channel", "amplitude", "of_amplitude", "baseline",
                                             "flags", "records", "truth")}
    for ch, a_sat in ((0, 2000.0), (5, 2300.0)):
        n = N_PER_CHANNEL
        is_kb = rng.uniform(size=n) < 0.12
        e = np.where(is_kb, kb.sample(n, 0.0, rng), ka.sample(n, 0.0, rng))
        e_meas = e + rng.normal(0, FWHM_EV / 2.3548, n)
        ptm = 100.0 + np.cumsum(rng.normal(0, 0.05, n))  # a baseline that wanders (bath drift)
        amp = a_sat * np.tanh(e_meas / E_SAT) * (1 - DRIFT * (ptm - 100.0))
        pile = rng.uniform(size=n) < 0.03
        amp_seen = np.where(pile, amp * 1.02, amp)  # pile-up pulses look a little larger
        cols["records"].append(_pulses(amp, ptm, rng, second=pile))
        cols["t"].append(1_800_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 50_000_000 + ch)
        cols["sample_index"].append(np.arange(n, dtype=np.int64) * 5000)
        cols["channel"].append(np.full(n, ch, np.int32))
        cols["amplitude"].append(amp_seen.astype(np.float32))
        cols["of_amplitude"].append(amp_seen.astype(np.float32))
        cols["baseline"].append(ptm.astype(np.float32))
        cols["flags"].append(np.zeros(n, np.uint16))
        cols["truth"].append(e)
    order = np.argsort(np.concatenate(cols["t"]), kind="stable")
    batch = {k: np.concatenate(v)[order] for k, v in cols.items() if k != "truth"}
    out = tmp_path_factory.mktemp("analysis")
    with RunWriter.create(out, station_name="synthetic_tes", station_snapshot={}, run_id="tes",
                          config={"pipeline": {"trigger": {"polarity": 1}}}, catalog=False) as w:
        w.append_events(batch, record_presamples=32, record_sample_rate_hz=1e5)
    return out / "tes.zarr", {"energy": np.concatenate(cols["truth"])[order]}


TES_CONFIG = {
    "calibration": {"lines": ["MnKAlpha", "MnKBeta"], "curve": "gain"},
    "fits": [{"line": "MnKAlpha", "window_ev": [5860, 5930], "bin_ev": 0.5}, {"line": "MnKBeta", "bin_ev": 1.0}],
}


def test_tes_spectrum_fwhm_position_drift_and_cuts(tes_run: tuple[Path, dict]) -> None:
    path, truth = tes_run
    res = analyze_run(path, TES_CONFIG, label="mn", results_dir=path.parent / "report")
    ka = res.fit("MnKAlpha")
    assert abs(ka.fwhm - FWHM_EV) < 3 * ka.fwhm_err and ka.fwhm_err < 0.2
    assert abs(ka.position - get_line("MnKAlpha").peak_energy) < 0.2
    for c in res.channels:  # the gain slope against the pretrigger mean is found (sign: gain falls as it rises)
        assert c.drift is not None and c.drift.slope == pytest.approx(DRIFT, rel=0.2)
        assert c.drift.width_after < 0.7 * c.drift.width_before
        assert [p.line for p in c.curve.points] == ["MnKAlpha", "MnKBeta"]
    ds = open_run(path).analysis("mn").load()
    # pile-up (3 %) is cut by the learnt postpeak_deriv cut; clean pulses are kept
    cuts = {c["name"]: c["bit"] for c in ds.attrs["cuts"]}
    assert {"flags", "auto_pretrig_rms", "auto_postpeak_deriv"} <= set(cuts)
    good = ds["good"].values
    assert 0.9 < good.mean() < 0.99
    e = ds["energy"].values
    calibrated_err = e[good] - truth["energy"][good]
    assert abs(np.median(calibrated_err)) < 1.0 and np.percentile(np.abs(calibrated_err), 50) < 2.0
    assert ds.attrs["line_fits"][0]["line"] == "MnKAlpha" and ds.attrs["channels"]["5"]["calibration"]["kind"] == "gain"
    files = {f.name for f in res.files}
    assert {"spectrum.png", "gain_curves.png", "drift.png", "lines.csv", "channels.csv"} <= files
    assert "MnKAlpha" in (path.parent / "report" / "lines.csv").read_text()
    xr.open_zarr(path, group="analysis/mn")  # plain xarray reads it (consolidated metadata refreshed)


def test_calibration_plan_and_label_rules(tes_run: tuple[Path, dict]) -> None:
    path, _ = tes_run
    amp = open_run(path).events()["of_amplitude"].values
    rough = float(np.median(amp))  # Ka dominates
    cfg = {"calibration": {"plan": [{"value": rough, "line": "MnKAlpha"}], "curve": "linear"},
           "drift": {"enabled": False}, "plots": False}
    res = analyze_run(path, cfg, label="plan")
    assert all(c.curve.kind == "linear" and len(c.curve.points) == 1 for c in res.channels)
    with pytest.raises(DerivedExistsError):
        analyze_run(path, cfg, label="plan")
    analyze_run(path, cfg, label="plan", overwrite=True)


@pytest.fixture(scope="module")
def mkid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    n = 4000
    e = np.where(rng.uniform(size=n) < 0.7, 1.55, 3.1)
    r_true = np.where(e < 2, 8.0, 11.0)  # resolving power E/dE of each line
    e_meas = e + rng.normal(0, 1, n) * e / r_true / 2.3548
    phase = 1.2 * np.tanh(e_meas / 10.0)  # the phase response of an MKID saturates (mildly: two lines calibrate it)
    out = tmp_path_factory.mktemp("mkid")
    with RunWriter.create(out, station_name="synthetic_mkid", station_snapshot={}, run_id="mkid", config={},
                          catalog=False) as w:
        w.append_events({"t": np.arange(n, dtype=np.int64) * 1000, "sample_index": np.arange(n, dtype=np.int64),
                         "channel": np.zeros(n, np.int32), "amplitude": phase.astype(np.float32)})
    return out / "mkid.zarr"


def test_mkid_optical_lines_calibrated_with_resolving_powers(mkid_run: Path, capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    cfg = tmp_path / "mkid.yaml"
    cfg.write_text("feature: amplitude\nsummaries: false\ndrift: {enabled: false}\n"
                   "calibration: {lines: [1.55, 3.1], curve: gain}\n"
                   "fits: [{line: 1.55, window_ev: [1.0, 2.2], bin_ev: 0.01}, {line: 3.1, window_ev: [2.3, 3.9]}]\n")
    assert cli_main(["analyze", str(mkid_run), "--config", str(cfg), "--label", "optical"]) == 0
    out = capsys.readouterr()
    assert out.out.strip().endswith("analysis/optical") and "E/ΔE" in out.err
    ds = open_run(mkid_run).analysis("optical")
    fits = {f["line"]: f for f in ds.attrs["line_fits"]}
    for name, r_true in (("1.55eV", 8.0), ("3.1eV", 11.0)):
        f = fits[name]
        r, r_err = f["peak_energy_ev"] / f["values"]["fwhm"], f["peak_energy_ev"] * f["errors"]["fwhm"] / f["values"]["fwhm"] ** 2
        assert abs(r - r_true) < 4 * r_err and r_err < 0.1 * r_true
        assert abs(f["values"]["position"] - f["peak_energy_ev"]) < 0.02


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(StationConfigError, match="calibration.lines"):
        parse_analysis_config({"calibration": {"lines": ["NotALine"]}}, "a.yaml")
    with pytest.raises(StationConfigError, match="cuts.flags"):
        parse_analysis_config({"cuts": {"flags": ["BOGUS"]}}, "a.yaml")
    with pytest.raises(StationConfigError, match=r"a\.yaml: driftt"):
        parse_analysis_config({"driftt": {}}, "a.yaml")
    with pytest.raises(StationConfigError, match="calibration.curve"):
        parse_analysis_config({"calibration": {"curve": "cubic"}}, "a.yaml")
    cfg = parse_analysis_config({"cuts": {"ranges": {"small": {"column": "peak_value", "max": 5}}}, "fits": ["MnKAlpha"]})
    assert cfg.cuts.ranges[0].max == 5 and cfg.fits[0].line == "MnKAlpha"
