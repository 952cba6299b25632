"""cryodaq.live: the live view's transport — a session sink that feeds GUIs over ZeroMQ.

:class:`LivePublisher` (a :class:`~cryodaq.acquisition.sinks.Sink`) reduces and sends a run's
results in the wire format of :mod:`cryodaq.wire.live`; :class:`StreamDecimator` and
:class:`IQReducer` are the display reductions it shares with the GUI's replay (docs/gui.md).
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.live.publisher import LivePublisher as LivePublisher, PublisherError as PublisherError
    from cryodaq.live.reduce import IQReducer as IQReducer, StreamDecimator as StreamDecimator

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
