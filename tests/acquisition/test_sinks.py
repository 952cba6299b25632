"""The sink fan-out: every call reaches every sink in order; closing closes all, then reports the first failure."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.acquisition.sinks import SessionStats, SinkFanout
from cryodaq.readout.blocks import Gap


class Recorder:
    def __init__(self, name: str, log: list, fail_on: str = "") -> None:
        self.name, self.log, self.fail_on = name, log, fail_on

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            self.log.append((self.name, method))
            if method == self.fail_on:
                raise OSError(f"{self.name} failed in {method}")
        return call


def test_every_call_reaches_every_sink_in_order(synth):
    log: list = []
    fan = SinkFanout([Recorder("writer", log), Recorder("live", log)])
    fan.start(synth.make_info(2))
    fan.output(synth.make_output(0, n_channels=2))
    fan.gap(Gap(0, 10, 0, "packet_loss"))
    fan.housekeeping("mxc", 0, 0.01, "K")
    fan.spectrum(0, np.zeros(3), np.zeros((2, 3)), "rad^2/Hz")
    fan.status(SessionStats())
    fan.close(interrupted=False, reason="done", error=None)
    methods = ["start", "output", "gap", "housekeeping", "spectrum", "status", "close"]
    assert log == [(s, m) for m in methods for s in ("writer", "live")]


def test_a_failing_sink_stops_data_calls_but_every_sink_is_closed():
    log: list = []
    fan = SinkFanout([Recorder("writer", log, fail_on="close"), Recorder("live", log, fail_on="close")])
    with pytest.raises(OSError, match="writer failed in close"):
        fan.close(interrupted=True, reason="x", error=None)
    assert log == [("writer", "close"), ("live", "close")]
    log.clear()
    fan = SinkFanout([Recorder("writer", log, fail_on="gap"), Recorder("live", log)])
    with pytest.raises(OSError, match="writer failed in gap"):
        fan.gap(Gap(0, 1, 0, "packet_loss"))  # a sink that cannot store data must not be skipped silently
    assert log == [("writer", "gap")]
