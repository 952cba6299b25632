"""stdout carries only what a script captures: ``RUN=$(cryodaq demo -q --duration 3); cryodaq info "$RUN"``
works; qcodes' "Connected to: ..." lines and the summaries go to stderr, unwrapped off a terminal.
(``--json``, and the same for signalled runs: test_signals.py; for ``cryodaq sweep``: tests/sweeps/test_script.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cryodaq.storage import open_run

pytestmark = pytest.mark.slow


def test_a_shell_captures_the_run_path_and_hands_it_to_info(tmp_path, quick_station):
    """``RUN=$(cryodaq demo -q --duration 3); cryodaq info "$RUN"`` (on the demo station, see conftest)."""
    script = (f'set -e; RUN=$("{sys.executable}" -m cryodaq run "{quick_station}" -q --duration 2 --out runs); '
              f'"{sys.executable}" -m cryodaq info "$RUN"; echo "captured=$RUN"')
    res = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                         env={**os.environ, "CRYODAQ_BACKEND": "numpy"})
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()  # `info` prints to stderr: the captured path is all stdout had
    path = tmp_path / line.removeprefix("captured=")
    assert path.suffix == ".zarr" and open_run(path).status.value == "complete"
    assert "Connected to: LSCI 372" in res.stderr  # qcodes' connect messages, moved to stderr
    for text in ("live data on tcp://127.0.0.1:", f"│ run      │ {line.removeprefix('captured=')}"):
        assert any(text in err_line for err_line in res.stderr.splitlines()), text  # whole, unwrapped lines
