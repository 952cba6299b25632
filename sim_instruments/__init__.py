"""Simulated hardware for cryodaq: one physical world and the instrument faces it shows."""
