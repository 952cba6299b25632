"""Simulator-only commands every fridge face accepts (not part of any real instrument's protocol)::

    SIM:FAULT:WARMUP <rate_k_per_s>[,<target_k>]   the fridge's base temperature climbs
    SIM:FAULT:WARMUP:STOP                           end the warm-up; the fridge cools back
    SIM:TRUTH:TEMP?                                 the true (noise-free) MXC temperature, K
"""

from __future__ import annotations

from sim_instruments.servers.scpi_parsing import ScpiError, parse_floats, split_command
from sim_instruments.world.world import World


def sim_fridge_command(world: World, command: str) -> str | None:
    """Handle a ``SIM:FAULT:WARMUP...`` / ``SIM:TRUTH:TEMP?`` command.

    Returns the reply ("" for a set command), or None when ``command`` is not one of
    them; raises ScpiError on a bad argument.
    """
    header, args = split_command(command)
    if header == "SIM:FAULT:WARMUP":
        values = parse_floats(args, header)
        if len(values) > 2 or values[0] < 0:
            raise ScpiError(-222, f"{header} takes <rate_k_per_s >= 0>[,<target_k>], got {args!r}")
        world.fridge.warm_up(values[0], values[1] if len(values) == 2 else None)
        return ""
    if header == "SIM:FAULT:WARMUP:STOP":
        world.fridge.stop_warm_up()
        return ""
    if header == "SIM:TRUTH:TEMP?":
        return repr(world.fridge.mxc_k())
    return None
