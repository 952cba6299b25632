"""cryodaq.acquisition."""
