"""The shipped station files (``*.yaml``) and sweep scripts (``scripts/``), installed as ``cryodaq.stations``.

This folder stays at the top of the repository; setup.py maps it into the package so a
non-editable install carries it. Find a shipped station or script by name with
:mod:`cryodaq.station.shipped` (``station_path("demo_mkid")``, ``script_path("tes_iv")``).
"""
