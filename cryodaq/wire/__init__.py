"""cryodaq.wire: byte formats on the wire, shared by the product and the simulators.

- :mod:`cryodaq.wire.packet` — the cryodaq readout-board UDP packet (docs/readout-stream.md).
- :mod:`cryodaq.wire.crs` — a CRS board's readout packet (rfmux's format; docs/readouts.md).
- :mod:`cryodaq.wire.live` — the live-view protocol over ZeroMQ (docs/gui.md).
- :mod:`cryodaq.wire.addresses` — instrument socket addresses as station files write them (VISA socket,
  ``http://host:port``, host + port): parsed, and rewritten to another port.

Each module depends on numpy, the standard library and :mod:`cryodaq.errors` only, so a simulator (or any
other program) can speak the format without importing the acquisition machinery.
"""
