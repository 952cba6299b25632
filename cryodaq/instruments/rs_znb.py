"""QCoDeS's Rohde & Schwarz ZNB driver over a raw SCPI socket (``TCPIP0::host::port::SOCKET``).

``qcodes.instrument_drivers.rohde_schwarz.RohdeSchwarzZNBBase`` is written for
VXI-11/HiSLIP (``::INSTR``) links, where the instrument's END flag ends a reply and
the reply's own line feed stays in the text: its value maps expect it
(``OUTP1?`` -> ``"1\\n"``, ``CALC1:FORM?`` -> ``"MLOG\\n"``). Over a raw socket there is
no END flag: with no read terminator a read only ends at the timeout, and with
``terminator="\\n"`` pyvisa strips the line feed and those value maps raise KeyError.
A socket resource that *stops* at the line feed but *keeps* it (termination character
enabled, ``read_termination`` None) gives the driver exactly what VXI-11 gives it.
That is all this module adds; every parameter is qcodes' own.
"""

from __future__ import annotations

from typing import Any

import pyvisa
from pyvisa import constants
from pyvisa.resources import MessageBasedResource
from qcodes.instrument_drivers.rohde_schwarz import RohdeSchwarzZNBBase

__all__ = ["RohdeSchwarzZNBSocket", "znb_socket_resource"]


def znb_socket_resource(address: str, visalib: str | None = "@py") -> MessageBasedResource:
    """Open ``address`` so that a read ends at LF and keeps it (what the ZNB driver expects)."""
    rm = pyvisa.ResourceManager(visalib) if visalib else pyvisa.ResourceManager()
    resource = rm.open_resource(address)
    if not isinstance(resource, MessageBasedResource):
        resource.close()
        raise TypeError(f"{address}: expected a message-based VISA resource, got {type(resource).__name__}")
    resource.read_termination = None  # keep the reply's LF ...
    resource.set_visa_attribute(constants.ResourceAttribute.termchar, ord("\n"))
    resource.set_visa_attribute(constants.ResourceAttribute.termchar_enabled, constants.VI_TRUE)  # ... but stop there
    return resource


class RohdeSchwarzZNBSocket(RohdeSchwarzZNBBase):
    """The qcodes R&S ZNB driver (any model, read from ``*IDN?``), also over ``::SOCKET`` addresses.

    Other addresses (``::INSTR``, HiSLIP) go to qcodes unchanged. Station files name it
    ``cryodaq.instruments.RohdeSchwarzZNBSocket`` with the usual ZNB init arguments.
    """

    def __init__(self, name: str, address: str, visalib: str | None = "@py", **kwargs: Any) -> None:
        if not str(address).upper().endswith("::SOCKET"):
            super().__init__(name, address, visalib=visalib, **kwargs)
            return
        resource = znb_socket_resource(address, visalib)
        try:
            super().__init__(name, None, resource=resource, **kwargs)  # type: ignore[arg-type]
        except BaseException:
            resource.close()
            raise
