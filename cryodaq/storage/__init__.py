"""cryodaq.storage."""
