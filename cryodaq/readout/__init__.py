"""cryodaq.readout: the readout seam — sources, receivers, and what drives a source directly.

- :class:`ReadoutSource` (protocol): what the session, captures and calibration sweeps talk to;
  :class:`StreamDescription` says what a source streams; :class:`Block` and :class:`Gap` are
  what arrives (docs/architecture.md, "Seams").
- :func:`receiving`: the receiver dance, once; :class:`UDPReceiver` for cryodaq's packet format,
  :class:`CRSReceiver` for a CRS board's multicast packets, :class:`DastardReceiver` for DASTARD's
  triggered records (:class:`RecordBlock` batches).
- :func:`capture_stream`: a few seconds of a source into arrays (sweep points).
- :func:`measure_iq_loops` / :func:`calibrate_source`: the IQ-loop calibration sweep of a tone comb;
  :func:`calibrate_tones`: the sweep (and resonator search) of a board that measures its own tones.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.readout.blocks import (
        Block as Block,
        Gap as Gap,
        ReceivedBlock as ReceivedBlock,
        RecordBlock as RecordBlock,
        StatusMessage as StatusMessage,
        TimeBase as TimeBase,
    )
    from cryodaq.readout.capture import (
        Capture as Capture,
        CaptureGapError as CaptureGapError,
        capture_stream as capture_stream,
    )
    from cryodaq.readout.crs_receiver import CRSReceiver as CRSReceiver
    from cryodaq.readout.dastard_receiver import (
        DastardReceiver as DastardReceiver,
        TriggerRateCheck as TriggerRateCheck,
    )
    from cryodaq.readout.loop_sweep import (
        calibrate_source as calibrate_source,
        measure_iq_loops as measure_iq_loops,
        write_loop_sweep as write_loop_sweep,
    )
    from cryodaq.readout.receive import receiving as receiving
    from cryodaq.readout.source import (
        BlockReceiver as BlockReceiver,
        ReadoutSource as ReadoutSource,
        ReceiverStats as ReceiverStats,
        StreamDescription as StreamDescription,
        ToneSweepSource as ToneSweepSource,
    )
    from cryodaq.readout.tone_sweep import calibrate_tones as calibrate_tones, search_resonators as search_resonators
    from cryodaq.readout.udp_receiver import UDPReceiver as UDPReceiver

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
