"""Take docs/gui-screenshot.png: the GUI, offscreen, connected to a live demo station.

Runs the simulated demo station (``stations/demo_mkid.yaml``) in its own process
(``cryodaq run``, live publisher on a free port), opens the window on it, waits
until every dock shows data (and the histogram has a fit), lets it run
``--settle`` more seconds, grabs the window, and stops the run. Usage::

    python docs/screenshot.py [--out docs/gui-screenshot.png] [--settle 20] [--size 1600x1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gui-screenshot.png")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to run after every dock has data")
    parser.add_argument("--size", default="1600x1000", help="window size WxH in pixels")
    parser.add_argument("--timeout", type=float, default=90.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import psutil

    from cryodaq.gui.app import MainWindow, make_app
    from cryodaq.gui.demo import DemoAcquisition
    from cryodaq.gui.sources import LiveSource

    width, height = (int(v) for v in args.size.lower().split("x"))
    app = make_app()
    me = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp, DemoAcquisition(tmp) as demo:
        window = MainWindow(LiveSource(demo.address), snapshot_dir=tmp)
        window.resize(width, height)
        window.show()
        window.start()
        deadline = time.monotonic() + args.timeout
        ready_at = cpu_at = None
        while time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.005)
            if demo.process.poll() is not None:
                raise SystemExit(f"the demo acquisition ended early: {demo.process.stderr.read()}")
            if ready_at is None and all(d.has_data() for d in window.docks) and window.histogram.fit is not None:
                ready_at, cpu_at = time.monotonic(), me.cpu_times()
                print(f"all docks populated; settling {args.settle:.0f} s", file=sys.stderr)
            if ready_at is not None and time.monotonic() - ready_at >= args.settle:
                break
        else:
            missing = [d.objectName() for d in window.docks if not d.has_data()]
            raise SystemExit(f"docks without data after {args.timeout:.0f} s: {missing}")
        cpu = me.cpu_times()
        busy = (cpu.user + cpu.system - cpu_at.user - cpu_at.system) / (time.monotonic() - ready_at)
        window.redraw()
        app.processEvents()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(args.out)):
            raise SystemExit(f"could not write {args.out}")
        print(f"wrote {args.out} ({window.width()}x{window.height()}); GUI process CPU {busy:.0%} of a core; "
              f"status: {window.status.text()}", file=sys.stderr)
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
