"""A demo acquisition in its own process, publishing live on a free port (for the screenshot script and tests).

It runs ``cryodaq run`` on a copy of the demo station file whose
``cryodaq.publish.address`` names a free loopback port: exactly what an
experimenter runs, so the GUI watching it is a separate process and cannot
cost the acquisition a sample.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

import yaml

from cryodaq.station.bringup import free_port
from cryodaq.station.shipped import station_path

DEMO_STATION = station_path("demo_mkid")


class DemoAcquisition:
    """``with DemoAcquisition(out_dir) as demo: ... demo.address ...``; stops cleanly (Ctrl-C) on exit."""

    def __init__(self, out_dir: str | Path, *, duration_s: float = 600.0, station: str | Path = DEMO_STATION) -> None:
        self.out_dir = Path(out_dir)
        self.duration_s = duration_s
        self.address = f"tcp://127.0.0.1:{free_port()}"
        doc = yaml.safe_load(Path(station).read_text())
        doc["cryodaq"]["publish"] = {"enabled": True, "address": self.address}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.station_file = self.out_dir / "demo_station.yaml"
        self.station_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        cmd = [sys.executable, "-m", "cryodaq", "run", str(self.station_file), "--simulate", "-q",
               "--duration", str(self.duration_s), "--out", str(self.out_dir)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "CRYODAQ_BACKEND": os.environ.get("CRYODAQ_BACKEND", "numpy")})
        return self

    def stop(self, timeout_s: float = 60.0) -> tuple[int, str, str]:
        """End the run like Ctrl-C does (clean, 'complete'); returns (exit code, stdout, stderr)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            out, err = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return self.process.returncode, out, err

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
