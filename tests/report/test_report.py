"""``cryodaq report`` on the two runs the issue names, both made by the shipped scripts on simulated stations:
a paramp characterisation (tune-up, Y-factor noise with budgets, repeats of every figure) and an
overnight resonator run (repeated fits while the fridge warms). The report folder follows its schema,
its results match the simulated world, its provenance names the instruments, the calibrations and
the software, and its checksums are those of the run's files; two reports compare point by point."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryodaq.cli import main
from cryodaq.report import compare_reports, validate_report, write_report
from cryodaq.report.writer import ReportError
from cryodaq.sweeps import run_script

REPO = Path(__file__).resolve().parents[2]
TARGET_HZ = 5.0004e9


@pytest.fixture(scope="module")
def paramp_run(tmp_path_factory) -> tuple[Path, Any]:
    worlds: list[Any] = []
    out = run_script(REPO / "stations" / "scripts" / "paramp_characterisation.py", REPO / "stations" / "demo_paramp.yaml",
                     tmp_path_factory.mktemp("paramp"), in_process_simulators=True,
                     options={"pump_powers_dbm": [-20.5], "noise_offsets_hz": [0.0], "interval_s": 0.0, "repeats": 3,
                              "p1db_points": 11, "bandwidth_points": 101, "analyze": False},
                     on_ready=lambda ctx: worlds.append(ctx.simulators.world))
    assert out.status == "complete", out.end_reason
    return out.path, worlds[0]


@pytest.fixture(scope="module")
def resonator_run(tmp_path_factory) -> tuple[Path, Any]:
    worlds: list[Any] = []

    def ready(ctx: Any) -> None:
        world = ctx.simulators.world
        worlds.append(world)
        world.fridge.warm_up(0.03, target_k=0.2)  # the fridge warms during the night

    out = run_script(REPO / "stations" / "scripts" / "resonator_repeat.py", REPO / "stations" / "demo_sweep.yaml",
                     tmp_path_factory.mktemp("resonators"), in_process_simulators=True,
                     options={"resonators_hz": [5.0e9, 5.01e9, 5.02e9, 5.03e9], "points": 401, "interval_s": 0.0,
                              "repeats": 4, "limit_k": 1.0, "clear_below_k": 0.9, "analyze": False},
                     on_ready=ready)
    assert out.status == "complete", out.end_reason
    return out.path, worlds[0]


def _report(run: Path, out: Path, capsys: Any) -> dict[str, Any]:
    assert main(["report", str(run), "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    return report


def test_report_of_a_paramp_characterisation(paramp_run, tmp_path, capsys):
    run, world = paramp_run
    out = tmp_path / "paramp-report"
    report = _report(run, out, capsys)
    pa = world.paramp
    assert report["schema"] == "cryodaq.characterisation-report" and report["schema_version"] == 1
    assert report["subject"]["kinds"] == ["paramp"] and report["run"]["run_id"] == run.name.removesuffix(".zarr")

    results = {r["id"]: r for r in report["results"]}
    tn = results[f"paramp_noise/receiver_noise_on_k[frequency_hz={TARGET_HZ:.9g}]"]
    assert tn["unit"] == "K" and tn["coverage_factor"] == 2.0 and tn["dominant_input"] == "line_loss_db"
    assert abs(tn["value"] - float(pa.noise_temperature_k(TARGET_HZ))) <= tn["expanded_uncertainty"]
    lines = [b for b in report["budgets"] if b["result_id"] == tn["id"]]
    assert sum(b["share"] for b in lines) == pytest.approx(1.0)
    assert {b["input"]: b for b in lines}["line_loss_db"]["source"].startswith("simulated cold thru/line")
    budgets = pd.read_csv(out / "budgets.csv")
    assert len(budgets) == len(report["budgets"]) and set(budgets["result_id"]) >= {tn["id"]}

    # distributions over time: every figure of the 3 repeats, against the simulated JPA
    stats = {r["figure"]: r for r in report["distributions"]["statistics"]}
    assert {"peak_gain_db", "bandwidth_hz", "p1db_input_dbm", "receiver_noise_on_k", "gain_db"} <= set(stats)
    assert stats["peak_gain_db"]["n"] == 3 and stats["peak_gain_db"]["unit"] == "dB"
    assert stats["peak_gain_db"]["mean"] == pytest.approx(10 * np.log10(pa.peak_gain()), abs=0.5)
    assert stats["bandwidth_hz"]["mean"] == pytest.approx(pa.bandwidth_hz(), rel=0.1)
    assert stats["p1db_input_dbm"]["mean"] == pytest.approx(pa.p1db_dbm(TARGET_HZ), abs=1.0)
    assert stats["receiver_noise_on_k"]["median_expanded_uncertainty"] > 0
    traces = pd.read_csv(out / "timetraces.csv")
    assert len(traces[traces["figure"] == "receiver_noise_on_k"]) == 3 and traces["expanded_uncertainty"].notna().any()
    assert results["repeat:repeat/peak_gain_db.mean"]["standard_uncertainty"] > 0

    # provenance
    instruments = {i["name"]: i for i in report["provenance"]["instruments"]}
    assert instruments["vna"]["model"] == "N5222B" and instruments["vna"]["serial"] == "MY00000000"
    assert instruments["analyzer"]["firmware"] == "A.33.03" and "KeysightN9030B" in instruments["analyzer"]["driver"]
    cals = {c["name"]: c for c in report["provenance"]["calibrations"]}
    assert cals["hot_load_temperature"]["date"] == "2024-09-12" and cals["hot_load_temperature"]["due"] == "2027-09-12"
    assert "certificate SIM-2024-117" in cals["hot_load_temperature"]["reference"]
    assert report["software"]["run"]["cryodaq"] and report["software"]["report_commit"]["source"] in ("git", "unknown",
                                                                                                      "direct_url.json")
    assert report["run"]["script"]["sha256"] and report["run"]["options"]["repeats"] == 3
    files = pd.read_csv(out / "run_files.csv")
    assert len(files) == report["provenance"]["run_files"]["count"] == sum(1 for p in run.rglob("*") if p.is_file())
    some = files.iloc[len(files) // 2]
    assert hashlib.sha256((run / some["path"]).read_bytes()).hexdigest() == some["sha256"]
    snapshot = json.loads((out / "station_snapshot.json").read_text())
    assert "pump" in snapshot["instruments"]
    for png in ("paramp_noise.png", "paramp_gain_map.png", "repeat_timetrace.png", "repeat_histograms.png",
                "repeat_allan.png", "repeat_vs_temperature.png"):
        assert (out / "procedures" / png).stat().st_size > 10_000, png
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".partial")]

    # an output in the way is refused, naming it; two reports compare point by point
    with pytest.raises(ReportError, match="not empty"):
        write_report(run, out)
    other = json.loads(json.dumps(report))  # a second lab that measured T_n 1.5 U higher, with the same U
    moved = next(r for r in other["results"] if r["id"] == tn["id"])
    moved["value"] += 1.5 * tn["expanded_uncertainty"]
    table = compare_reports(out, other).set_index("id")
    assert len(table) == len([r for r in report["results"] if r["value"] is not None])
    assert table.loc[tn["id"], "E_n"] == pytest.approx(-1.5 / np.sqrt(2))
    assert (table.drop(index=tn["id"])["difference"] == 0).all()


def test_report_of_an_overnight_resonator_run(resonator_run, tmp_path, capsys):
    run, world = resonator_run
    report = _report(run, tmp_path / "resonator-report", capsys)
    assert report["subject"]["kinds"] == ["resonators"]
    stats = {r["figure"]: r for r in report["distributions"]["statistics"]}
    assert {f"fr_hz[resonator={i}]" for i in range(4)} <= set(stats) and "Qi[resonator=0]" in stats
    traces = pd.read_csv(tmp_path / "resonator-report" / "timetraces.csv")
    fr0 = traces[traces["figure"] == "fr_hz[resonator=0]"]
    assert len(fr0) == 4 and fr0["temperature_k"].max() > fr0["temperature_k"].min()
    for _, row in fr0.iterrows():  # each fit against the simulated resonator at the measured temperature
        truth = float(world.resonator_params(row["temperature_k"])[0][0])
        assert row["value"] == pytest.approx(truth, abs=max(5 * row["expanded_uncertainty"], 2e3))
    assert stats["fr_hz[resonator=0]"]["r_temperature"] is not None
    assert {"Qi_vs_T.png", "repeat_allan.png"} - {p.split("/")[-1] for s in report["sections"] for p in s["files"]} \
        == {"Qi_vs_T.png"}
    assert report["provenance"]["instruments"] and report["provenance"]["run_files"]["count"] > 10
