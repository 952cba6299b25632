"""sim_instruments.servers: how the faces are served and started.

- ``line_server``: the threaded TCP line server (:class:`LineServer`, fault injection) and the
  :class:`ServedFace` lifecycle; ``scpi_parsing`` and ``scpi_command_tree`` (:class:`ScpiFace`):
  SCPI messages, arguments, errors and the command-tree framework; ``streaming_board``: the UDP
  streaming readout board (:class:`StreamingBoardFace`).
- ``launcher`` (:func:`serve`, in-process), ``simulated_station`` (:class:`SimulatedStation`, a
  child process), ``plugin`` (:func:`launch`, the entry point cryodaq calls); ``jsonrpc_server``
  (:class:`JsonRpcServer`, Go-style JSON-RPC over TCP, e.g. DASTARD's control port); ``station_file`` and
  ``command_line``: ``python -m sim_instruments FILE.yaml`` (a station file or a simulation dict).
- ``rfmux_mock`` (:class:`RfmuxMock`, the ``rfmux_mock`` entry point): rfmux's own mock CRS in a
  child process of rfmux's environment (``rfmux_env``: ``$RFMUX_PYTHON`` or a cached venv);
  ``rfmux_mock_child`` is the script that environment runs.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from sim_instruments.servers.command_line import main as main
    from sim_instruments.servers.jsonrpc_server import JsonRpcServer as JsonRpcServer, RpcError as RpcError
    from sim_instruments.servers.launcher import SimServers as SimServers, serve as serve
    from sim_instruments.servers.line_server import (
        Faults as Faults,
        GARBAGE_REPLY as GARBAGE_REPLY,
        LineServer as LineServer,
        ServedFace as ServedFace,
    )
    from sim_instruments.servers.plugin import launch as launch
    from sim_instruments.servers.rfmux_env import (
        RfmuxUnavailableError as RfmuxUnavailableError,
        rfmux_python as rfmux_python,
    )
    from sim_instruments.servers.rfmux_mock import MockCRSProcess as MockCRSProcess, RfmuxMock as RfmuxMock
    from sim_instruments.servers.scpi_command_tree import CommandTree as CommandTree, ScpiFace as ScpiFace
    from sim_instruments.servers.scpi_parsing import ErrorQueue as ErrorQueue, ScpiError as ScpiError
    from sim_instruments.servers.simulated_station import SimulatedStation as SimulatedStation
    from sim_instruments.servers.station_file import (
        read_simulation as read_simulation,
        simulation_from_station as simulation_from_station,
    )
    from sim_instruments.servers.streaming_board import StreamingBoardFace as StreamingBoardFace

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
