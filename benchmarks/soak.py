"""Soak: the demo station for minutes under faults, then SIGKILL and recover; every sample accounted for
(prints figures; not a test, not part of the test run).

    python benchmarks/soak.py [--minutes 3] [--loss 0.002] [--calibration loop_sweep|baseline] [--out DIR]

What runs: the demo MKID station's simulators in this process (``sim_instruments.serve``, on free
ports) and ``cryodaq run`` against them in a child process (``--no-simulate``, as against real
hardware on the network), so that this script can do to the hardware what happens in a lab:

- random packet loss on the readout's UDP stream, the whole time (``SIM:FAULT:LOSS`` over SCPI);
- an instrument restart: the fridge thermometer's server stops (its clients are dropped) for a
  few seconds at a third of the run and comes back on the same port; housekeeping fails
  meanwhile and must resume through cryodaq's reconnecting driver;
- a stalled GUI: a ZeroMQ subscriber connected to the live publisher that never reads;
- at the end, SIGKILL (no clean stop), then ``cryodaq recover``.

Then from the run on disk (what any reader sees up to the last commit):

- samples expected: the ADC samples the board produced from the start of the stream to the end
  of the last committed row of the stored stream (its sample counter starts at 0);
- samples stored: committed rows x ADC samples per row;
- gaps recorded: their count and the ADC samples they say are missing, by cause;
- expected must equal stored + missing exactly (a gap never stitched over, no sample counted twice);
- the board's own count of packets it dropped, against the packet-loss gaps (up to the commit);
- peak resident memory of the run process (with its children) per quarter of the run: it must
  not grow once the run is up;
- what ``cryodaq recover`` left: status crashed, and the data readable up to the last commit.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml
import zmq

from cryodaq.station import load_station_config
from cryodaq.station.bringup import with_simulator_ports
from cryodaq.station.shipped import station_path
from cryodaq.storage import open_run
from sim_instruments.servers.launcher import serve

RESTART_DOWN_S = 3.0


def scpi(port: int, command: str) -> None:
    """Send one SCPI command to a simulated instrument on loopback (as a lab script would)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((command + "\n").encode())


def soak_station(folder: Path, servers: Any, calibration: str) -> Path:
    """The demo station pointed at the simulators of this process; live view on a free port."""
    config = load_station_config(station_path("demo_mkid"))
    doc = yaml.safe_load(config.path.read_text())
    doc["instruments"] = with_simulator_ports(config, servers.ports).instruments
    doc["cryodaq"]["simulation"]["enabled"] = False  # the hardware is already there: this process serves it
    doc["cryodaq"]["publish"]["address"] = "tcp://127.0.0.1:0"
    if calibration == "baseline":
        doc["cryodaq"]["pipeline"]["calibration"] = {"method": "baseline"}
    path = folder / "soak_station.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class StderrReader(threading.Thread):
    """Collects the run's stderr lines (the live address, warnings) without blocking it."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line.rstrip("\n"))

    def find(self, pattern: str) -> re.Match[str] | None:
        for line in list(self.lines):
            m = re.search(pattern, line)
            if m:
                return m
        return None


def rss_mb(pid: int) -> float:
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 1e6
    except psutil.NoSuchProcess:
        return float("nan")


def account(run_path: Path, adc_per_row: int) -> dict[str, Any]:
    """The sample accounting of a run on disk, up to its last commit (module docstring).

    The stored stream holds one row per ``adc_per_row`` ADC samples. A gap resets the DSP, and
    a row needs the filters' full support on one side of the gap: each segment between gaps
    gives rows from ``head`` samples after its start to ``tail`` samples before its end (the
    channelizer's and low-pass's lengths; the same for every segment, checked here). So, exactly:
    expected = rows x adc_per_row + segment edges + samples in recorded gaps.
    """
    run = open_run(run_path)
    rows = run.committed("stream")
    idx = np.asarray(run.root["stream"]["sample_index"][:rows], dtype=np.int64)
    end = int(idx[-1]) + adc_per_row  # the stream starts at ADC sample 0; the last committed row's end
    gaps = run.gaps()
    first = gaps["first_sample"].values.astype(np.int64)
    n = gaps["n_samples"].values.astype(np.int64)
    cause = np.array([str(c) for c in gaps["cause"].values], dtype=object)
    inside = first < end
    first, n, cause = first[inside], n[inside], cause[inside]
    # segments between gaps, and the rows of each
    starts = np.concatenate([[0], first + n])
    ends = np.concatenate([first, [end]])
    seg = np.searchsorted(first + n, idx, side="right")  # the segment of each row
    heads = np.array([idx[seg == k][0] - starts[k] for k in range(len(starts)) if (seg == k).any()])
    tails = np.array([ends[k] - (idx[seg == k][-1] + adc_per_row) for k in range(len(starts) - 1) if (seg == k).any()])
    contiguous = all(np.all(np.diff(idx[seg == k]) == adc_per_row) for k in range(len(starts)))
    edges = int(heads.sum() + tails.sum())
    return {
        "status": run.status.value, "stored_status": run.stored_status.value, "rows": rows,
        "expected": end, "stored": rows * adc_per_row, "edges": edges, "segments": len(starts),
        "head": sorted(set(heads.tolist())), "tail": sorted(set(tails.tolist())), "contiguous": contiguous,
        "gaps": int(len(first)), "missing": int(n.sum()),
        "by_cause": {c: (int((cause == c).sum()), int(n[cause == c].sum())) for c in sorted(set(cause))},
        "events": run.committed("events"), "housekeeping_t": run.housekeeping("mxc_temperature")["t"].values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--loss", type=float, default=0.002, help="packet loss probability (default %(default)s)")
    parser.add_argument("--calibration", choices=["loop_sweep", "baseline"], default="loop_sweep",
                        help="the station's IQ-loop sweep, or none (a machine too loaded for the simulator to "
                             "keep real time fails the sweep's 5 s per step)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the run (default: a temporary one)")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="cryodaq-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    duration = args.minutes * 60.0

    config = load_station_config(station_path("demo_mkid"))
    with serve(config.simulation_dict(free_ports=True)) as servers:
        station = soak_station(folder, servers, args.calibration)
        board, thermometer = servers.faces["readout"], servers.faces["fridge_thermometer"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "cryodaq", "run", str(station), "--no-simulate", "--duration", "none", "-q",
             "--out", str(folder / "runs")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "CRYODAQ_BACKEND": "numpy"})
        err = StderrReader(proc.stderr)
        err.start()
        # the run has started once its folder exists (after the IQ-loop sweep) and the board streams
        deadline = time.monotonic() + 180
        while not (list((folder / "runs").glob("*.zarr")) and board.streaming):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the run did not start:\n" + "\n".join(err.lines[-20:]))
            time.sleep(0.1)
        run_path = next((folder / "runs").glob("*.zarr"))
        t0 = time.monotonic()
        scpi(board.port, f"SIM:FAULT:LOSS {args.loss}")
        live = err.find(r"live data on (tcp://\S+):")
        ctx = zmq.Context()
        stalled = ctx.socket(zmq.SUB)  # a GUI that hangs: connected, subscribed, never reading
        stalled.setsockopt(zmq.RCVHWM, 10)
        stalled.setsockopt(zmq.RCVBUF, 65536)
        stalled.setsockopt(zmq.SUBSCRIBE, b"")
        if live:
            stalled.connect(live[1])
        print(f"soak: {args.minutes:g} min of the demo station, run {run_path}\n"
              f"  faults: packet loss p={args.loss:g}; thermometer restart at {duration / 3:.0f} s "
              f"({RESTART_DOWN_S:g} s down); stalled subscriber on {live[1] if live else '(no live view!)'}; "
              f"SIGKILL at {duration:.0f} s; calibration {args.calibration}", flush=True)

        rss: list[tuple[float, float]] = []
        restarted_at = None
        while (elapsed := time.monotonic() - t0) < duration:
            if proc.poll() is not None:
                raise SystemExit("the run ended by itself:\n" + "\n".join(err.lines[-20:]))
            if restarted_at is None and elapsed >= duration / 3:
                thermometer.stop()  # a power-cycled instrument: clients dropped, nothing listening
                time.sleep(RESTART_DOWN_S)
                thermometer.start()  # back on the same port
                restarted_at = time.time_ns()
            rss.append((elapsed, rss_mb(proc.pid)))
            time.sleep(1.0)

        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        psutil.wait_procs(children, timeout=10)
        board_stats = dict(board.stats)
        scpi(board.port, "STRM:STAT OFF")  # the board would stream on to nobody
        stalled.close(linger=0)
        ctx.term()

    recover = subprocess.run([sys.executable, "-m", "cryodaq", "recover", str(run_path)], capture_output=True,
                             text=True)
    cfg = config.pipeline
    adc_per_row = cfg.n_channels // cfg.oversampling * cfg.decimation
    acc = account(run_path, adc_per_row)
    hk_after = int((acc["housekeeping_t"] > (restarted_at or 0)).sum())
    quarters = np.array_split(np.array([r for _, r in rss]), 4)
    peaks = [float(np.nanmax(q)) if len(q) else float("nan") for q in quarters]
    total = acc["stored"] + acc["edges"] + acc["missing"]
    match = acc["expected"] == total and acc["contiguous"] and len(acc["head"]) <= 1 and len(acc["tail"]) <= 1
    board_lost = board_stats["dropped"] * board.samples_per_packet
    packet_gaps = acc["by_cause"].get("packet_loss", (0, 0))

    print(f"\nrun {run_path}")
    print(f"  after SIGKILL: stored status {acc['stored_status']!r}, read as {acc['status']!r}; cryodaq recover "
          f"exit {recover.returncode}: {' '.join((recover.stdout + recover.stderr).split())[:200]}")
    print(f"  samples expected (ADC samples, stream start to the last commit)   {acc['expected']:>14,d}")
    print(f"  samples stored ({acc['rows']:,d} rows x {adc_per_row} ADC samples)             {acc['stored']:>14,d}")
    print(f"  samples at the {acc['segments']} segments' filter edges (head {acc['head']}, tail {acc['tail']})"
          f"  {acc['edges']:>14,d}")
    print(f"  gaps recorded: {acc['gaps']}, samples they hold                        {acc['missing']:>14,d}   "
          + ", ".join(f"{c}: {k} gaps, {s:,d} samples" for c, (k, s) in acc["by_cause"].items()))
    print(f"  stored + edges + gaps                                              {total:>14,d}   "
          f"{'== expected: every sample accounted for' if match else '!= expected: MISMATCH'}")
    print(f"  the board dropped {board_stats['dropped']} packets ({board_lost:,d} samples) in all, sent "
          f"{board_stats['sent']}; packet-loss gaps up to the last commit: {packet_gaps[0]} ({packet_gaps[1]:,d} "
          "samples; the rest fell after the last commit, lost with the SIGKILL)")
    print(f"  events {acc['events']:,d}; housekeeping rows after the thermometer came back: {hk_after}")
    print("  peak RSS of the run process per quarter (MB): " + ", ".join(f"{p:.0f}" for p in peaks)
          + f"; growth from the 2nd to the 4th quarter: {peaks[3] - peaks[1]:+.0f} MB "
          f"({(peaks[3] / peaks[1] - 1) * 100:+.1f} %)")
    warnings = [line for line in err.lines if "warning" in line.lower() or "error" in line.lower()]
    print(f"  run's stderr: {len(err.lines)} lines, {len(warnings)} warnings/errors"
          + (f"; first: {warnings[0][:150]}" if warnings else ""))
    if not match:
        sys.exit(1)


if __name__ == "__main__":
    main()
