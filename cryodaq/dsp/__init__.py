"""cryodaq.dsp."""
