"""rfmux's mock CRS in a process of its own: run by :mod:`sim_instruments.servers.rfmux_mock`.

This file is executed with the Python of the rfmux environment (``python rfmux_mock_child.py
SERIAL [PARENT_PID]``), never imported by cryodaq or sim_instruments: rfmux imports PyQt6, which cannot share
a process with cryodaq's PySide6 GUI, and rfmux is no dependency of cryodaq. It uses the
standard library and rfmux only.

It starts the mock the way rfmux documents (``load_session`` with the ``rfmux.mock`` flavour),
prints one line ``CRYODAQ_MOCK_READY {"address": "127.0.0.1:PORT", ...}`` once the mock's Tuber
server listens, and keeps the session alive. SIGTERM, or its parent's death, exits through
rfmux's ``atexit`` hook, which stops the mock's server process; SIGINT is left to the parent (a
terminal's Ctrl-C reaches the whole process group, and the run decides how to stop).
"""

import json
import os
import signal
import sys
import threading
import time


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # SystemExit runs atexit: rfmux stops its server
    # the launcher's pid comes along: a parent that died before this line ran is noticed too
    parent = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    serial = sys.argv[1] if len(sys.argv) > 1 else "0000"
    started = time.monotonic()
    import rfmux

    imported = time.monotonic()
    session = rfmux.load_session(f'!HardwareMap [ !flavour "rfmux.mock", !CRS {{ serial: "{serial}" }} ]')
    crs = session.query(rfmux.CRS).one()
    print("CRYODAQ_MOCK_READY " + json.dumps({
        "address": crs.hostname, "rfmux": getattr(rfmux, "__version__", "?"),
        "import_s": round(imported - started, 2), "load_s": round(time.monotonic() - imported, 2),
    }), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
