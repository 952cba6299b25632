"""Time you can trust, measured: the two-array station streamed live, joined by ``coincide``, judged against the truth.

Runs ``stations/demo_two_arrays.yaml`` (simulated boards over UDP, the live pipelines with the
coincidence veto, Zarr runs, clock models) for ``--duration`` seconds with the muon flux and the
glitch and photon rates raised so that a minute gives hundreds of muon coincidences, with an NTP
step of ``--step`` seconds on array_b's clock half-way; joins the two runs with
:func:`cryodaq.timing.coincide` on Dask; and compares with the simulated truth (the world's
particles, rebuilt here from the same settings, and the boards' clock settings):

- muon coincidence efficiency: muons that crossed both arrays and left a recorded event in each,
  found in one coincidence group;
- the clock offset between the stations, estimated from the coincidences, against the truth
  (array_b's clock offset minus array_a's) and the simulated stamp jitter;
- accidental coincidences: expected from the singles rates, and measured in off-time windows;
- the online veto: glitch-caused events flagged, isolated photons flagged;
- each run's clock model: drift and jitter fitted against those simulated, the step recorded.

Run: ``python benchmarks/timing.py [--duration 90] [--muon-flux 300] [--workers 2]``; prints a
markdown table (the figures in docs/timing.md). tests/timing/test_two_arrays.py runs the same
:func:`evaluate` on a few seconds.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.dsp import EventFlag
from cryodaq.station import StationConfig, load_station_config
from cryodaq.station.shipped import station_path
from cryodaq.storage import open_run
from cryodaq.timing.clock import ClockModel
from cryodaq.timing.coincidences import CoincidenceResult
from sim_instruments.world import World
from sim_instruments.world.particles import GLITCH, MUON, PHOTON


def station_config(*, muon_flux: float, glitch_rate_hz: float, photon_rate_hz: float,
                   step_s: float, step_after_s: float) -> StationConfig:
    """The demo two-array station with raised rates and a clock step on array_b."""
    cfg = load_station_config(station_path("demo_two_arrays"))
    world = copy.deepcopy(cfg.simulation.world)
    world["cosmics"]["muon_flux_per_cm2_min"] = muon_flux
    for array in world["arrays"].values():
        array["glitch_rate_hz"] = glitch_rate_hz
        array["photon_rate_hz"] = photon_rate_hz
    if step_s:
        world["arrays"]["array_b"]["clock"]["steps"] = [[step_after_s, step_s]]
    return replace(cfg, simulation=replace(cfg.simulation, world=world))


def _isolated(events: np.ndarray, t_ns: np.ndarray, gap_ns: int) -> np.ndarray:
    """True where the truth event at ``t_ns`` has no other event of ``events`` within ``gap_ns``."""
    t_all = np.sort(events["t_ns"])
    lo = np.searchsorted(t_all, t_ns - gap_ns, "left")
    hi = np.searchsorted(t_all, t_ns + gap_ns, "right")
    return (hi - lo) <= 1


def evaluate(paths: list[Path], world_section: dict[str, Any], result: CoincidenceResult) -> dict[str, Any]:
    """The figures of a two-array run pair and its coincidences against the simulated truth."""
    particles = World(world_section).particles
    names = list(world_section["arrays"])
    runs = [open_run(p) for p in paths]
    per_run = []
    for run in runs:
        name = run.attrs["run_group"]["readout"]
        k = names.index(name)
        clock_cfg = world_section["arrays"][name].get("clock", {})
        offset_ns = int(round(float(clock_cfg.get("offset_s", 0.0)) * 1e9))
        ev = run.events()
        t = np.asarray(ev["t"].values, np.int64) - offset_ns  # the model's (continuous) clock, back to true UTC
        ids, kinds = particles.match(k, t, np.asarray(ev["channel"].values))
        model = ClockModel.from_attrs(run.attrs["clock"])
        span = (min(s.first_t_ns for s in model.segments) - offset_ns, max(s.last_t_ns for s in model.segments) - offset_ns)
        per_run.append({"name": name, "index": k, "ids": ids, "kinds": kinds, "flags": np.asarray(ev["flags"].values),
                        "t": t, "span": span, "model": model, "clock": clock_cfg})
    lo, hi = max(r["span"][0] for r in per_run), min(r["span"][1] for r in per_run)
    truth = particles.events(lo, hi)
    out: dict[str, Any] = {"overlap_s": (hi - lo) / 1e9}

    # muon coincidences: crossed both arrays and seen (a matched event) in each; found in one group
    both_bits = (1 << per_run[0]["index"]) | (1 << per_run[1]["index"])
    muons = truth[(truth["kind"] == MUON) & ((truth["arrays"] & both_bits) == both_bits)]["event"]
    seen = [set(r["ids"][r["kinds"] == MUON].tolist()) for r in per_run]
    injected = sorted(set(muons.tolist()) & seen[0] & seen[1])
    groups = runs[0].reprocessed(result.label)
    g, member_run, member_event = (np.asarray(groups[k].values) for k in ("member_group", "member_run", "member_event"))
    found = set()
    for gid in np.unique(g):
        sel = g == gid
        in_a = per_run[0]["ids"][member_event[sel & (member_run == 0)]]
        in_b = per_run[1]["ids"][member_event[sel & (member_run == 1)]]
        found |= set(in_a.tolist()) & set(in_b.tolist())
    out["muons_crossing_both"] = int(muons.size)
    out["muon_coincidences_injected"] = len(injected)
    out["muon_coincidences_found"] = len(set(injected) & found)
    out["muon_efficiency"] = len(set(injected) & found) / len(injected) if injected else float("nan")

    # the clock offset between the stations: run 1's clock minus run 0's for simultaneous events
    est = result.offsets[0]
    true_offset = float(per_run[1]["clock"].get("offset_s", 0.0)) - float(per_run[0]["clock"].get("offset_s", 0.0))
    out.update(offset_true_s=true_offset, offset_estimated_s=est.offset_s, offset_error_s=est.error_s,
               offset_found=est.found, jitter_s=[float(r["clock"].get("jitter_s", 0.0)) for r in per_run],
               drift_between_ppm=est.drift_ppm, drift_between_error_ppm=est.drift_error_ppm)

    # the veto, per run: glitch-caused events flagged; isolated photons (no other truth event in that array
    # within 1 ms) flagged
    vetoed_glitch, glitch_events, vetoed_photon, photon_events = 0, 0, 0, 0
    for r in per_run:
        vetoed = (r["flags"] & np.uint16(EventFlag.VETOED)) != 0
        inside = (r["t"] >= lo) & (r["t"] < hi)
        glitch = inside & (r["kinds"] == GLITCH)
        vetoed_glitch += int(np.count_nonzero(vetoed & glitch))
        glitch_events += int(np.count_nonzero(glitch))
        mine = truth[(truth["arrays"] & (1 << r["index"])) != 0]
        photon = inside & (r["kinds"] == PHOTON)
        t_of = dict(zip(mine["event"].tolist(), mine["t_ns"].tolist(), strict=True))
        ids = r["ids"][photon]
        known = np.array([i in t_of for i in ids.tolist()], bool)
        iso = np.zeros(ids.size, bool)
        if known.any():
            iso[known] = _isolated(mine, np.array([t_of[i] for i in ids[known].tolist()], np.int64), 1_000_000)
        photon_idx = np.flatnonzero(photon)[iso]
        vetoed_photon += int(np.count_nonzero(vetoed[photon_idx]))
        photon_events += int(photon_idx.size)
    out.update(glitch_events=glitch_events, glitch_vetoed=vetoed_glitch,
               glitch_veto_efficiency=vetoed_glitch / glitch_events if glitch_events else float("nan"),
               isolated_photons=photon_events, isolated_photons_vetoed=vetoed_photon,
               photon_veto_fraction=vetoed_photon / photon_events if photon_events else float("nan"))

    # the clock models against the simulated clocks
    out["clocks"] = [{"readout": r["name"], "drift_fitted_ppm": r["model"].drift_ppm,
                      "drift_error_ppm": float(np.sqrt(r["model"].segments[0].slope_var) / r["model"].ns_per_sample * 1e6),
                      "drift_true_ppm": float(r["clock"].get("drift_ppm", 0.0)),
                      "jitter_fitted_s": r["model"].jitter_ns * 1e-9, "jitter_true_s": float(r["clock"].get("jitter_s", 0.0)),
                      "jumps_s": [j.size_ns * 1e-9 for j in r["model"].jumps],
                      "steps_true_s": [s[1] for s in r["clock"].get("steps", [])]} for r in per_run]
    a = result.accidentals
    out["accidentals"] = {"expected_hz": a.expected_hz, "expected_error_hz": a.expected_error_hz,
                          "measured_hz": a.measured_hz, "measured_error_hz": a.measured_error_hz,
                          "off_time_counts": a.off_time_counts, "pull": a.pull}
    return out


def table(fig: dict[str, Any], result: CoincidenceResult) -> str:
    a = fig["accidentals"]
    rows = [
        ("overlap of the two runs", f"{fig['overlap_s']:.1f} s"),
        ("muons crossing both arrays (truth)", f"{fig['muons_crossing_both']}"),
        ("... seen by both (a recorded event in each)", f"{fig['muon_coincidences_injected']}"),
        ("... found in one coincidence group", f"{fig['muon_coincidences_found']} "
                                               f"(**{100 * fig['muon_efficiency']:.2f} %**)"),
        ("clock offset array_b - array_a: estimated", f"{fig['offset_estimated_s'] * 1e3:+.4f} ms "
                                                      f"+- {fig['offset_error_s'] * 1e6:.2f} us"),
        ("... truth / estimate - truth", f"{fig['offset_true_s'] * 1e3:+.4f} ms / "
                                         f"**{(fig['offset_estimated_s'] - fig['offset_true_s']) * 1e6:+.2f} us** "
                                         f"(stamp jitter {fig['jitter_s'][0] * 1e6:.0f} / {fig['jitter_s'][1] * 1e6:.0f} us)"),
        ("relative drift from the coincidences", f"{fig['drift_between_ppm']:+.2f} +- {fig['drift_between_error_ppm']:.2f} ppm"),
        ("accidentals expected (singles rates)", f"{a['expected_hz']:.4f} +- {a['expected_error_hz']:.4f} /s"),
        ("accidentals measured (off-time windows)", f"{a['measured_hz']:.4f} +- {a['measured_error_hz']:.4f} /s "
                                                    f"({a['off_time_counts']} groups, pull {a['pull']:+.2f})"),
        ("coincidences found (all)", f"{result.n_coincidences} ({result.coincidence_rate_hz:.3f} /s)"),
        ("glitch-caused events vetoed online", f"{fig['glitch_vetoed']} / {fig['glitch_events']} "
                                               f"(**{100 * fig['glitch_veto_efficiency']:.2f} %**)"),
        ("isolated photons vetoed online", f"{fig['isolated_photons_vetoed']} / {fig['isolated_photons']} "
                                           f"(**{100 * fig['photon_veto_fraction']:.2f} %**)"),
    ]
    for c in fig["clocks"]:
        rows.append((f"clock model {c['readout']}: drift fitted / true",
                     f"{c['drift_fitted_ppm']:+.3f} +- {c['drift_error_ppm']:.3f} / {c['drift_true_ppm']:+.3f} ppm"))
        rows.append((f"clock model {c['readout']}: jitter fitted / true; jumps / steps",
                     f"{c['jitter_fitted_s'] * 1e6:.1f} / {c['jitter_true_s'] * 1e6:.1f} us; "
                     f"{[round(j, 6) for j in c['jumps_s']]} / {c['steps_true_s']} s"))
    width = max(len(r[0]) for r in rows)
    return "\n".join([f"| {'figure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|",
                      *[f"| {k:<{width}} | {v} |" for k, v in rows]])


def main() -> None:
    from cryodaq.acquisition.session import StreamSession
    from cryodaq.timing.coincidences import coincide

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=90.0, help="seconds streamed")
    ap.add_argument("--muon-flux", type=float, default=300.0, help="muons /cm²/min (sea level: ~1)")
    ap.add_argument("--glitch-rate", type=float, default=0.5, help="substrate glitches per second per array")
    ap.add_argument("--photon-rate", type=float, default=1.0, help="photons per second per pixel")
    ap.add_argument("--step", type=float, default=0.25, help="NTP step of array_b's clock half-way (s; 0: none)")
    ap.add_argument("--window", type=float, default=200e-6, help="coincidence window (s)")
    ap.add_argument("--workers", type=int, default=2, help="also join on this many Dask workers (0: not)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/cryodaq-timing-bench"), help="directory for the runs")
    args = ap.parse_args()
    cfg = station_config(muon_flux=args.muon_flux, glitch_rate_hz=args.glitch_rate, photon_rate_hz=args.photon_rate,
                         step_s=args.step, step_after_s=args.duration / 2)
    t0 = time.perf_counter()
    summary = StreamSession(cfg, args.out, simulate=True).run(args.duration)
    t_run = time.perf_counter() - t0
    for name, st in summary.lane_stats.items():
        print(f"{name}: {st.samples} samples, {st.events} events, {st.vetoed} vetoed, {st.gaps} gaps "
              f"({st.samples_lost} samples lost), {st.dropped_blocks} blocks dropped")
    t0 = time.perf_counter()
    result = coincide(summary.paths, args.window, label="benchmark", workers=0)
    t_join = time.perf_counter() - t0
    print(result.render())
    if args.workers:  # the same join on a local Dask cluster: the same figures, and what starting one costs
        t0 = time.perf_counter()
        on_dask = coincide(summary.paths, args.window, label="benchmark-dask", workers=args.workers)
        t_dask = time.perf_counter() - t0
        same = (on_dask.n_coincidences, on_dask.accidentals, on_dask.offsets) == \
            (result.n_coincidences, result.accidentals, result.offsets)
        print(f"on {on_dask.workers} Dask workers: {t_dask:.1f} s (cluster start included); same figures: {same}")
    fig = evaluate(summary.paths, cfg.simulation.world, result)
    print(f"\nstreamed {args.duration:g} s in {t_run:.1f} s; coincide ({result.n_events} events) took "
          f"{t_join:.2f} s in this process\n")
    print(table(fig, result))


if __name__ == "__main__":
    main()
