"""Simulated multi-channel SQUID flux-locked-loop (FLL) controller for the TES array.

A SCPI-like text protocol over TCP (LF-terminated), in the manner of Magnicon /
STAR Cryoelectronics controllers; channel ``n`` (1-based) is the SQUID of TES
pixel ``n − 1`` in ``world.tes``. The FLL model is in :mod:`sim_instruments.world.tes_array`.

=============================  ==========================================================
``*IDN?``                      ``cryodaq-sim,SQUID-FLL,SIM0100,0.1``
``*RST`` / ``*CLS``            every channel: default gain, zero offset, relocked / clear errors
``SYST:ERR?``                  oldest queued error, ``0,"No error"`` when empty
``CHAN:COUN?``                 number of channels
``CH<n>:LOCK[?] ON|OFF``       close / open the loop (locking picks a flux quantum)
``CH<n>:RESET``                reset the integrator: relocks, possibly one Φ0 away
``CH<n>:FB:GAIN[?] <V/Φ0>``    FLL transfer coefficient, 0.01..5 V/Φ0
``CH<n>:FLUX:OFFS[?] <Φ0>``    flux offset, −10..10 Φ0 (shifts the locked output by −gain·offset)
``CH<n>:MIN?``                 input-coil current per flux quantum (A/Φ0), fixed
=============================  ==========================================================

A bad command or value is queued for ``SYST:ERR?`` and changes nothing; an unknown or
failed query sends no reply.
"""

from __future__ import annotations

import re
import threading

from sim_instruments.faces.tes_access import require_tes
from sim_instruments.servers.line_server import LineServer, ServedFace
from sim_instruments.servers.scpi_parsing import (
    ErrorQueue,
    ScpiError,
    no_args,
    parse_bool,
    parse_float,
    split_command,
    undefined_header,
)
from sim_instruments.world.world import World

IDN = "cryodaq-sim,SQUID-FLL,SIM0100,0.1"
GAIN_RANGE = (0.01, 5.0)
OFFSET_RANGE = (-10.0, 10.0)
_CHANNEL = re.compile(r"^CH(\d+):(.+)$")


class SquidControllerFace(ServedFace):
    """The FLL controller face: an LF line server on ``host:port`` over ``world.tes``'s SQUIDs."""

    face = "squid_controller"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "squid") -> None:
        self.world = world
        self.name = name
        self.tes = require_tes(world, name, self.face)
        self.errors = ErrorQueue()
        self.server = LineServer(self, host, port, reply_termination="\n", name=name)
        self._lock = threading.RLock()

    # -- dispatch -------------------------------------------------------------------
    def handle(self, command: str) -> str | None:
        header, args = split_command(command)
        try:
            with self._lock:
                return self._dispatch(header, args)
        except ScpiError as err:
            self.errors.push(err)
            return None

    def _dispatch(self, header: str, args: str) -> str | None:
        tes = self.tes
        if header == "*IDN?":
            return IDN
        if header == "SYST:ERR?":
            return self.errors.pop()
        if header == "*CLS":
            self.errors.clear()
            return None
        if header == "*RST":
            no_args(args, "*RST")
            for ch in range(tes.n_channels):
                tes.set_feedback_gain(ch, tes.config.feedback_gain_v_per_phi0)
                tes.set_flux_offset(ch, 0.0)
                tes.reset(ch)
            return None
        if header == "CHAN:COUN?":
            return str(tes.n_channels)
        m = _CHANNEL.match(header)
        if not m:
            raise undefined_header(header)
        n, cmd = int(m[1]), m[2]
        if not 1 <= n <= tes.n_channels:
            raise ScpiError(-114, f"Header suffix out of range; channel {n} is not 1..{tes.n_channels}")
        ch = n - 1
        state = tes.squid_state()
        if cmd == "LOCK?":
            return "1" if state.locked[ch] else "0"
        if cmd == "LOCK":
            tes.set_locked(ch, parse_bool(args, f"CH{n}:LOCK"))
            return None
        if cmd == "RESET":
            no_args(args, f"CH{n}:RESET")
            tes.reset(ch)
            return None
        if cmd == "FB:GAIN?":
            return repr(float(state.feedback_gain[ch]))
        if cmd == "FB:GAIN":
            tes.set_feedback_gain(ch, self._in_range(args, f"CH{n}:FB:GAIN", GAIN_RANGE))
            return None
        if cmd == "FLUX:OFFS?":
            return repr(float(state.flux_offset[ch]))
        if cmd == "FLUX:OFFS":
            tes.set_flux_offset(ch, self._in_range(args, f"CH{n}:FLUX:OFFS", OFFSET_RANGE))
            return None
        if cmd == "MIN?":
            return repr(float(tes.config.input_current_per_phi0_a))
        raise undefined_header(header)

    @staticmethod
    def _in_range(args: str, what: str, bounds: tuple[float, float]) -> float:
        value = parse_float(args, what)
        if not bounds[0] <= value <= bounds[1]:
            raise ScpiError(-222, f"Data out of range; {what} must be {bounds[0]}..{bounds[1]}, got {value}")
        return value
