"""cryodaq: DAQ and readout framework for cryogenic detectors.

Subpackages (see docs/architecture.md):

- :mod:`cryodaq.instruments` -- QCoDeS drivers and meta-instruments
- :mod:`cryodaq.dsp` -- array-module agnostic signal processing (numpy or cupy)
- :mod:`cryodaq.storage` -- the Zarr run format, reader and writer
- :mod:`cryodaq.acquisition` -- UDP receiver and the streaming pipeline
- :mod:`cryodaq.station` -- station files (qcodes Station config + cryodaq section)
- :mod:`cryodaq.gui` -- pyqtgraph live / replay GUI
- :mod:`cryodaq.sweeps` -- sweep engine and standard procedures
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cryodaq")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
