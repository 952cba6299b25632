"""cryodaq.instruments."""
