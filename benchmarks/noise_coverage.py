"""Coverage of the Y-factor noise-temperature budget on the simulated demo paramp station.

Each repeat draws a new bench (line loss and temperature, hot/cold mismatch, thermometer errors,
analyzer and VNA scale errors) from the distributions ``stations/demo_paramp.yaml`` states in its
``cryodaq.calibrations``, draws the analyzer, VNA and thermometer readings from the simulated world
in-process (``sim_instruments.world.yfactor_bench``) and computes T_n ± U (k = 2) with
``cryodaq.metrology.noise.yfactor_budget``. Prints, per batch of 200 repeats, the fraction whose
interval covers the world's truth, the mean and spread of (x − truth)/u_c, and the dominant input;
then the pooled coverage. The GUM's k = 2 aims at 95.45 %; 200 repeats scatter by ±1.5 %.

Run: ``python benchmarks/noise_coverage.py [--batches 10] [--repeats 200]``.
The repeat machinery is the test's (tests/metrology/test_noise_budget.py), loaded from its file.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _test_module():
    path = REPO / "tests" / "metrology" / "test_noise_budget.py"
    spec = importlib.util.spec_from_file_location("noise_budget_repeats", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    t = _test_module()
    from cryodaq.station import load_station_config

    cals = load_station_config(t.STATION).calibrations
    print(f"{'seed':>4} {'repeats':>7} {'coverage':>9} {'mean z':>7} {'std z':>6}  dominant input (share of repeats)")
    pooled = []
    started = time.perf_counter()
    for seed in range(args.batches):
        covered, dominant, z = t.coverage(args.repeats, seed=100 + seed, cals=cals)
        pooled.append(covered)
        name, count = Counter(dominant).most_common(1)[0]
        print(f"{100 + seed:>4} {args.repeats:>7} {100 * covered.mean():8.1f}% {np.mean(z):7.3f} {np.std(z):6.3f}  "
              f"{name} ({100 * count / len(dominant):.0f} %)")
    allc = np.concatenate(pooled)
    p = allc.mean()
    print(f"pooled: {allc.size} repeats, coverage {100 * p:.2f} % ± {100 * np.sqrt(p * (1 - p) / allc.size):.2f} % "
          f"(k = 2 aims at 95.45 %); {1e3 * (time.perf_counter() - started) / allc.size:.1f} ms per repeat")


if __name__ == "__main__":
    main()
