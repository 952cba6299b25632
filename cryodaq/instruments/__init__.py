"""QCoDeS drivers and meta-instruments written for cryodaq.

Vendor instruments that QCoDeS already drives (Lakeshore 372, Keysight PNA, ...)
are used through QCoDeS's own drivers, named by their qcodes path in station files.
"""

from cryodaq.instruments.mkid_readout_board import MKIDReadoutBoard
from cryodaq.instruments.streaming_board import StreamingBoard

__all__ = ["MKIDReadoutBoard", "StreamingBoard"]
