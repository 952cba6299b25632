"""The SCPI error queue (``SYST:ERR?``), read the same way for every cryodaq driver."""

from __future__ import annotations

from cryodaq.errors import InstrumentError


class SCPIErrorQueue:
    """Mixin for qcodes VISA drivers whose instrument keeps a SCPI error queue."""

    def check_errors(self) -> None:
        """Raise InstrumentError (naming instrument and address) if the instrument reports an error."""
        reply = self.ask("SYST:ERR?").strip()  # type: ignore[attr-defined]
        code = reply.partition(",")[0]
        try:
            ok = int(code) == 0
        except ValueError:
            raise InstrumentError(self.name, self.address,  # type: ignore[attr-defined]
                                  f"unreadable error-queue reply {reply!r}") from None
        if not ok:
            raise InstrumentError(self.name, self.address, f"reported error {reply}")  # type: ignore[attr-defined]
