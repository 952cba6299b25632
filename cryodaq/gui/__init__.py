"""cryodaq.gui."""
