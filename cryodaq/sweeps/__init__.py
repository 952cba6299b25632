"""cryodaq.sweeps."""
