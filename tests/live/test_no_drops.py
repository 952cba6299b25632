"""A stalled GUI process costs the acquisition nothing: the publisher drops (and counts) its messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from cryodaq.live.publisher import LivePublisher
from cryodaq.acquisition.session import StreamSession
from cryodaq.station import load_station_config
from cryodaq.storage import open_run

pytestmark = pytest.mark.slow

# A GUI's receiving side (LiveSource) that takes one message, then never reads again; the test
# then freezes the whole process (SIGSTOP), zmq I/O thread included: a GUI hung in a redraw,
# or a laptop gone to sleep.
STALLED_GUI = """
import os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from cryodaq.gui.sources import LiveSource
src = LiveSource(sys.argv[1], rcvhwm=1, rcvbuf=4096)
print("connected", flush=True)
deadline = time.monotonic() + 60
while not src.poll():
    if time.monotonic() > deadline:
        sys.exit("no message from the publisher")
    time.sleep(0.01)
print("receiving", flush=True)
time.sleep(600)
"""


def test_a_stalled_gui_process_does_not_cost_a_sample(tmp_path, synth, qt_ok):
    # small queues and unreduced data so that the stalled subscriber fills its buffers within the run
    pub = LivePublisher("tcp://127.0.0.1:0", sndhwm=4, sndbuf=4096, stream_rate_hz=16_000, iq_rate_hz=16_000)
    gui = subprocess.Popen([sys.executable, "-c", STALLED_GUI, pub.address], stdout=subprocess.PIPE, text=True)
    connected, stalled = threading.Event(), threading.Event()

    def freeze_when_receiving() -> None:
        if gui.stdout.readline().strip() == "connected":
            connected.set()
            if gui.stdout.readline().strip() == "receiving":
                os.kill(gui.pid, signal.SIGSTOP)
                stalled.set()

    threading.Thread(target=freeze_when_receiving, daemon=True).start()
    try:
        # the GUI process imports Qt in its own time; the run starts once it is subscribed, and the
        # GUI freezes on the run's first message, so it is stalled while the data flow
        assert connected.wait(60), "the GUI process did not start"
        session = StreamSession(load_station_config(synth.DEMO), tmp_path, simulate=True, sinks=[pub])
        summary = session.run(3.0)
    finally:
        gui.kill()
        gui.wait(timeout=10)
    assert stalled.is_set(), "the GUI process never received a message, so nothing was tested"

    # the acquisition side: every sample received, processed and stored
    st = summary.stats
    assert summary.status == "complete"
    assert (st.lost_packets, st.dropped_blocks, st.gaps, st.samples_lost) == (0, 0, 0, 0)
    run = open_run(summary.path)
    assert run.gaps().sizes["gap"] == 0
    idx = run.stream("phase")["sample_index"].values
    assert len(idx) > 16_000  # over a second of 16 kS/s output
    assert len(np.unique(np.diff(idx))) == 1  # contiguous: not one output sample missing

    # the publisher side: the stalled GUI's messages were dropped and counted there, nowhere else
    assert pub.total_drops > 0
    assert pub.errors == 0
