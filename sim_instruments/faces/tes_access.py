"""What the TES faces (bias source, SQUID controller, TES board) share: reaching the world's TES array."""

from __future__ import annotations

from sim_instruments.world.tes_array import TESArrayModel
from sim_instruments.world.world import World


def require_tes(world: World, name: str, face: str) -> TESArrayModel:
    """``world.tes``, or a ValueError saying how to enable it (for the TES faces)."""
    if world.tes is None:
        raise ValueError(f"{name}: the {face} face needs the TES array; set world.tes.enabled: true")
    return world.tes
