"""QCoDeS driver for a CRS readout board (t0.technology, firmware "rfmux"): Tuber control, multicast IQ stream.

Control is Tuber over HTTP (:mod:`cryodaq.instruments.tuber`) with the board's own calls
(``set_frequency``, ``set_amplitude``, ``set_nco_frequency``, ``set_decimation``,
``get_samples`` ...), as rfmux 1.7.0 documents them and its mock serves them. Data are the
board's readout packets (:mod:`cryodaq.wire.crs`), multicast to a group that any number of
receivers join; :class:`~cryodaq.readout.crs_receiver.CRSReceiver` turns them into IQ blocks.
rfmux itself is not used (it is asyncio-, Jupyter- and PyQt6-based): this driver talks to the
board over the network, as rfmux does.

Layout: the board has ``modules`` (:class:`CRSModule`, numbered as the board numbers them,
from 1), each with an NCO and ``channels_per_module`` tone channels (:class:`CRSChannel`:
``frequency`` relative to the module's NCO, ``amplitude`` as a fraction of the DAC's full scale,
``phase`` in degrees). ``board.channels`` lists every channel of every module, so one station
safety limit covers them all: ``crs.channels.amplitude: [0, 0.01]``. Validators and limits run
before anything is sent.

The board implements the :class:`~cryodaq.readout.source.ReadoutSource` seam (kind ``iq``: the
channels with a tone, i.e. a frequency and a non-zero amplitude) and the
:class:`~cryodaq.readout.source.ToneSweepSource` seam (``get_samples`` at stepped tone
frequencies), which the run's calibration sweep uses (:mod:`cryodaq.readout.tone_sweep`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np
from qcodes.instrument import ChannelList, Instrument, InstrumentChannel
from qcodes.parameters import Parameter
from qcodes.validators import Bool, Enum, Ints, MultiType, Numbers, Strings

from cryodaq.errors import InstrumentError
from cryodaq.instruments.tuber import TuberCall, TuberClient
from cryodaq.readout.blocks import TimeBase
from cryodaq.readout.crs_receiver import CRSReceiver
from cryodaq.readout.source import StreamDescription
from cryodaq.wire import crs as wire

__all__ = ["CRSBoard", "CRSChannel", "CRSModule"]

log = logging.getLogger(__name__)

#: |frequency - NCO| a channel can take (the board refuses more)
MAX_OFFSET_HZ = 313.5e6


def _float_or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


class CRSChannel(InstrumentChannel):
    """One tone channel of a module: frequency (Hz, relative to the module's NCO), amplitude, phase."""

    def __init__(self, parent: CRSModule, name: str, channel: int, **kwargs: Any) -> None:
        super().__init__(parent, name, **kwargs)
        self.channel, self.module = int(channel), parent.module
        self.frequency: Parameter = self.add_parameter(
            "frequency", unit="Hz", label="tone frequency relative to the NCO",
            get_cmd=lambda: self._get("get_frequency"), set_cmd=lambda v: self._set("set_frequency", v),
            get_parser=_float_or_nan, set_parser=float, vals=Numbers(-MAX_OFFSET_HZ, MAX_OFFSET_HZ),
            docstring="The tone's offset from its module's NCO; the RF frequency is nco_frequency + frequency. "
                      "NaN: never set.")
        self.amplitude: Parameter = self.add_parameter(
            "amplitude", label="tone amplitude (fraction of the DAC's full scale)",
            get_cmd=lambda: self._get("get_amplitude"), set_cmd=lambda v: self._set("set_amplitude", v),
            get_parser=_float_or_nan, set_parser=float, vals=Numbers(-1.0, 1.0),
            docstring="Normalised amplitude, -1..1 of the DAC's full scale (0: the tone is off). "
                      "Station safety limits: crs.channels.amplitude.")
        self.phase: Parameter = self.add_parameter(
            "phase", unit="deg", label="demodulator phase",
            get_cmd=lambda: self._get("get_phase", units="DEGREES"),
            set_cmd=lambda v: self._set("set_phase", v, units="DEGREES"),
            get_parser=_float_or_nan, set_parser=float, vals=Numbers(-360.0, 360.0),
            docstring="Phase by which the board turns this channel's samples, in degrees.")

    @property
    def board(self) -> CRSBoard:
        return self.root_instrument  # type: ignore[return-value]

    def _get(self, method: str, **kwargs: Any) -> Any:
        return self.board.tuber.call(method, channel=self.channel, module=self.module, **kwargs)

    def _set(self, method: str, value: float, **kwargs: Any) -> None:
        self.board.tuber.call(method, float(value), channel=self.channel, module=self.module, **kwargs)


class CRSModule(InstrumentChannel):
    """One module of the board (one feedline): its NCO and its tone channels (``ch1`` ...)."""

    def __init__(self, parent: CRSBoard, name: str, module: int, n_channels: int, **kwargs: Any) -> None:
        super().__init__(parent, name, **kwargs)
        self.module = int(module)
        self.nco_frequency: Parameter = self.add_parameter(
            "nco_frequency", unit="Hz", label="NCO frequency",
            get_cmd=lambda: parent.tuber.call("get_nco_frequency", module=self.module),
            set_cmd=lambda v: parent.tuber.call("set_nco_frequency", float(v), module=self.module),
            get_parser=_float_or_nan, set_parser=float, vals=Numbers(0, 10e9),
            docstring="The module's numerically controlled oscillator: tones sit within ±313.5 MHz of it.")
        channels = ChannelList(self, "channels", CRSChannel)
        for c in range(1, n_channels + 1):
            channel = CRSChannel(self, f"ch{c}", c)
            self.add_submodule(f"ch{c}", channel)
            channels.append(channel)
        self.channels = self.add_submodule("channels", channels.to_channel_tuple())


class CRSBoard(Instrument):
    """A CRS board over Tuber (``address``: ``host`` or ``host:port``; a board serves on port 80).

    ``modules``: the board's modules to use (from 1). ``channels_per_module``: tone channels made
    available as parameters on each (the board has 1024, or 128 with short packets).
    Stream: ``stream_group`` (None: unicast datagrams only), ``stream_port``,
    ``stream_interface`` (the local address that receives it; None: the one that routes to the
    board), ``source_specific`` (join the group for the board's address only, as real boards
    need), ``serial`` (accept only this board's packets; None: any).
    """

    def __init__(self, name: str, address: str, *, modules: Sequence[int] = (1,), channels_per_module: int = 8,
                 stream_group: str | None = wire.GROUP, stream_port: int = wire.PORT,
                 stream_interface: str | None = None, source_specific: bool = True, serial: int | None = None,
                 short_packets: bool = False, timeout_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.address = address
        self.tuber = TuberClient(address, name=name, timeout_s=timeout_s)
        try:
            description = self.tuber.describe(timeout_s=min(timeout_s, 10.0))
        except InstrumentError as exc:
            raise InstrumentError(name, address, f"is no CRS answering Tuber: {exc.problem}") from exc
        self.board_methods = set(description["methods"])
        if not {"set_frequency", "get_samples"} <= self.board_methods:
            raise InstrumentError(name, address, "answers Tuber but is no CRS (no set_frequency/get_samples)")
        self._started_stream = False
        self._swept: dict[int, int] = {}  # module -> channels a sweep set (switched off by set_tones)

        self.decimation: Parameter = self.add_parameter(
            "decimation", label="decimation stage", get_cmd=lambda: self.tuber.call("get_decimation"),
            set_cmd=lambda v: self._set_decimation(int(v), self.short_packets.cache.get(get_if_invalid=False)),
            get_parser=lambda v: None if v is None else int(v), vals=Ints(0, 6),
            docstring="Decimation stage 0-6: sample rate 625 MHz/256/64/2**stage (38.1 kHz ... 596 Hz).")
        self.short_packets: Parameter = self.add_parameter(
            "short_packets", label="short packets (128 channels)", get_cmd=None,
            set_cmd=lambda v: self._set_decimation(int(self.decimation.cache.get()), bool(v)),
            initial_cache_value=bool(short_packets), vals=Bool(),
            docstring="128-channel packets (needed at stages 0-2); long packets carry 1024 channels.")
        self.sample_rate: Parameter = self.add_parameter(
            "sample_rate", unit="Hz", label="sample rate",
            get_cmd=lambda: wire.sample_rate_hz(self.decimation.cache.get()),
            docstring="Samples per second of each channel, from the decimation stage.")
        self.tone_amplitude: Parameter = self.add_parameter(
            "tone_amplitude", label="amplitude of tones the calibration sweep places", get_cmd=None, set_cmd=None,
            initial_value=0.0015, vals=Numbers(-1.0, 1.0),
            docstring="Amplitude given to the tones of calibration sweeps and resonator searches (the channel "
                      "amplitude limits apply to it before anything is sent).")
        self.sweep_samples: Parameter = self.add_parameter(
            "sweep_samples", label="samples averaged per sweep point", get_cmd=None, set_cmd=None,
            initial_value=4, vals=Ints(1, 10000), docstring="get_samples averaged at each point of a tone sweep.")
        self.stream_group: Parameter = self.add_parameter(
            "stream_group", label="multicast group of the readout stream", get_cmd=None, set_cmd=None,
            initial_value=stream_group, vals=MultiType(Strings(), Enum(None)),
            docstring="The board's multicast group (None: take unicast datagrams only, e.g. from a relay).")
        self.stream_port: Parameter = self.add_parameter(
            "stream_port", label="UDP port of the readout stream", get_cmd=None, set_cmd=None,
            initial_value=int(stream_port), vals=Ints(1, 65535))
        self.stream_interface: Parameter = self.add_parameter(
            "stream_interface", label="local address receiving the stream", get_cmd=None, set_cmd=None,
            initial_value=stream_interface or self._route_to_board(),
            docstring="Local address that joins the group (default: the one whose route reaches the board).")
        self.source_specific: Parameter = self.add_parameter(
            "source_specific", label="source-specific join", get_cmd=None, set_cmd=None,
            initial_value=bool(source_specific), vals=Bool(),
            docstring="Join the group for the board's address only (IP_ADD_SOURCE_MEMBERSHIP), as a CRS needs.")
        self.serial: Parameter = self.add_parameter(
            "serial", label="board serial to accept", get_cmd=None, set_cmd=None, initial_value=serial,
            docstring="Only packets with this serial are used (None: any).")
        self.firmware: Parameter = self.add_parameter(
            "firmware", label="firmware release", get_cmd=lambda: self.tuber.call("get_firmware_release"))
        self.fpga_temperature: Parameter = self.add_parameter(
            "fpga_temperature", unit="°C", label="FPGA temperature", get_parser=float,
            get_cmd=lambda: self.tuber.call("get_motherboard_temperature", "MOTHERBOARD_TEMPERATURE_FPGA"),
            docstring="The motherboard's FPGA temperature sensor (housekeeping).")

        modlist = ChannelList(self, "modules", CRSModule)
        all_channels = ChannelList(self, "channels", CRSChannel)
        for m in modules:
            module = CRSModule(self, f"module{int(m)}", int(m), int(channels_per_module))
            self.add_submodule(f"module{int(m)}", module)
            modlist.append(module)
            for channel in module.channels:
                all_channels.append(channel)
        self.modules = self.add_submodule("modules", modlist.to_channel_tuple())
        self.channels = self.add_submodule("channels", all_channels.to_channel_tuple())
        self.decimation.get()
        self.connect_message()

    # --- helpers ------------------------------------------------------------
    def get_idn(self) -> dict[str, str | None]:
        release = self.tuber.call("get_firmware_release") if "get_firmware_release" in self.board_methods else {}
        version = release.get("version") if isinstance(release, dict) else str(release)
        return {"vendor": "t0.technology", "model": "CRS", "serial": None, "firmware": version}

    def _route_to_board(self) -> str:
        host = self.tuber.host
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((socket.gethostbyname(host), 9))  # no datagram is sent: only the route is looked up
                return str(s.getsockname()[0])
        except OSError:
            return "0.0.0.0"

    def _set_decimation(self, stage: int, short: bool) -> None:
        if stage <= 2 and not short:
            raise InstrumentError(self.name, self.address, f"decimation stage {stage} needs short packets "
                                                           "(short_packets=True): long packets start at stage 3")
        self.tuber.call("set_decimation", stage, short=bool(short))
        self.decimation.cache.set(stage)
        self.short_packets.cache.set(bool(short))

    def module(self, line: int) -> CRSModule:
        for module in self.modules:
            if module.module == int(line):
                return module
        raise InstrumentError(self.name, self.address, f"has no module {line} (modules: {self.feedlines()})")

    def read_tones(self, *, everything: bool = False) -> list[tuple[int, int, float, float]]:
        """``(module, channel, rf_hz, amplitude)`` of every channel with a tone, in (module, channel)
        order, read in one request; the parameters' caches are updated (``everything``: the phases,
        firmware and temperature too, as for a snapshot)."""
        calls: list[TuberCall] = [("get_decimation", (), {})]
        for module in self.modules:
            calls.append(("get_nco_frequency", (), {"module": module.module}))
            for ch in module.channels:
                where = {"channel": ch.channel, "module": module.module}
                calls += [("get_frequency", (), where), ("get_amplitude", (), where)]
                if everything:
                    calls.append(("get_phase", (), {"units": "DEGREES", **where}))
        if everything:
            calls += [("get_firmware_release", (), {}),
                      ("get_motherboard_temperature", ("MOTHERBOARD_TEMPERATURE_FPGA",), {})]
        answers = iter(self.tuber.batch(calls))
        self.decimation.cache.set(next(answers))
        tones = []
        for module in self.modules:
            nco = _float_or_nan(next(answers))
            _cache(module.nco_frequency, nco)
            for ch in module.channels:
                f, a = _float_or_nan(next(answers)), _float_or_nan(next(answers))
                _cache(ch.frequency, f)
                _cache(ch.amplitude, a)
                if everything:
                    _cache(ch.phase, _float_or_nan(next(answers)))
                if np.isfinite(f) and np.isfinite(a) and a != 0:
                    tones.append((module.module, ch.channel, (0.0 if np.isnan(nco) else nco) + f, a))
        if everything:
            self.firmware.cache.set(next(answers))
            self.fpga_temperature.cache.set(float(next(answers)))
        return tones

    def snapshot_base(self, update: bool | None = False,
                      params_to_skip_update: Sequence[str] | None = None) -> dict[str, Any]:
        """The snapshot, its values read in one request (not one per parameter) when ``update``."""
        if update:
            self.read_tones(everything=True)
        return super().snapshot_base(update=False, params_to_skip_update=params_to_skip_update)

    # --- ReadoutSource ---------------------------------------------------------
    def describe(self) -> StreamDescription:
        """The channels with a tone, as complex64 IQ in ADC counts at the decimated rate.

        Channel coordinates: ``tone_frequency_hz`` (RF), ``module``, ``crs_channel`` (board
        numbering), ``amplitude``. The time base is the packets' IRIG-B stamp; which clock it
        follows, and whether it is disciplined, the receiver learns from the first packet.
        """
        tones = self.read_tones()
        if not tones:
            raise InstrumentError(self.name, self.address, "no channel has a tone (a frequency and a non-zero "
                                                           "amplitude): there is nothing to stream")
        stage = self.decimation.cache.get()
        if stage is None:
            raise InstrumentError(self.name, self.address, "reports no decimation stage (no module streams)")
        return StreamDescription(
            kind="iq", sample_rate_hz=wire.sample_rate_hz(stage), n_channels=len(tones), sample_dtype="complex64",
            channel_coords={"tone_frequency_hz": np.array([t[2] for t in tones]),
                            "module": np.array([t[0] for t in tones], np.int32),
                            "crs_channel": np.array([t[1] for t in tones], np.int32),
                            "amplitude": np.array([t[3] for t in tones])},
            units="counts", source=self.name,
            time_base=TimeBase(source="irig_b", detail="the board's IRIG-B packet timestamps; their time source "
                                                       "and discipline are read from the first packet"))

    def configure(self, **settings: Any) -> None:
        """Set parameters by name, dotted paths into modules included (``**{"module1.nco_frequency": f}``)."""
        for key, value in settings.items():
            obj: Any = self
            *path, last = key.replace("__", ".").split(".")
            for part in path:
                obj = obj.submodules.get(part) if hasattr(obj, "submodules") else None
                if obj is None:
                    break
            param = getattr(obj, "parameters", {}).get(last) if obj is not None else None
            if param is None or not param.settable:
                raise InstrumentError(self.name, self.address, f"has no settable parameter {key!r}")
            param(value)

    def is_streaming(self) -> bool:
        """False: the board multicasts to any number of receivers; joining takes nothing over."""
        return False

    def start_stream(self, host: str, port: int) -> None:
        """Make sure the board streams. A CRS streams from power-on; rfmux's mock streams once asked
        (``start_udp_streaming``), which is done here when it is not streaming yet. ``host``/``port``
        (the receiver's) are not the board's business: it multicasts to its group."""
        if "start_udp_streaming" not in self.board_methods:
            return
        status = self.tuber.call("get_udp_streaming_status")
        if not (isinstance(status, dict) and status.get("active")):
            self._started_stream = bool(self.tuber.call("start_udp_streaming", port=int(self.stream_port())))

    def stop_stream(self) -> None:
        """Stop the stream only if :meth:`start_stream` started it (others may be receiving it)."""
        if self._started_stream:
            self._started_stream = False
            self.tuber.call("stop_udp_streaming")

    def open_receiver(self, host: str, port: int, *, packets_per_block: int, queue_blocks: int) -> CRSReceiver:
        """A receiver of this board's packets (not started), joined as ``stream_*`` say; ``host``/``port``
        (the station's ``data_host``/``data_port``) do not apply: the board says where it sends."""
        tones = self.read_tones()
        if not tones:
            raise InstrumentError(self.name, self.address, "no channel has a tone: there is nothing to receive")
        board_ip = socket.gethostbyname(self.tuber.host)
        return CRSReceiver([(m, c) for m, c, _, _ in tones], stage=int(self.decimation.cache.get()),
                           port=int(self.stream_port()), group=self.stream_group(),
                           interface=str(self.stream_interface()),
                           source=board_ip if self.source_specific() else None, serial=self.serial(),
                           packets_per_block=packets_per_block, queue_blocks=queue_blocks)

    # --- ToneSweepSource ------------------------------------------------------
    def feedlines(self) -> list[int]:
        return [m.module for m in self.modules]

    def feedline_band(self, line: int) -> tuple[float, float]:
        nco = float(self.module(line).nco_frequency.cache.get())
        return nco - MAX_OFFSET_HZ, nco + MAX_OFFSET_HZ

    def max_sweep_tones(self, line: int) -> int:
        return wire.SHORT_CHANNELS if self.short_packets() else wire.LONG_CHANNELS

    def max_stream_tones(self, line: int) -> int:
        return len(self.module(line).channels)

    def tones(self, line: int) -> np.ndarray:
        return np.array([rf for m, _, rf, _ in self.read_tones() if m == int(line)])

    def _checked(self, line: int, frequencies: np.ndarray) -> tuple[CRSModule, np.ndarray, float]:
        """Offsets from the NCO and the tone amplitude, checked by a channel's validators (station limits
        included) before any of them is sent."""
        module = self.module(line)
        probe = module.channels[0]
        amplitude = float(self.tone_amplitude())
        probe.amplitude.validate(amplitude)
        nco = float(module.nco_frequency.cache.get())  # read once; kept up to date by every set and read
        offsets = np.asarray(frequencies, dtype=float) - nco
        for value in (offsets.min(), offsets.max()):
            probe.frequency.validate(float(value))
        return module, offsets, amplitude

    def measure_iq(self, line: int, frequencies: np.ndarray) -> np.ndarray:
        """IQ (ADC counts, the stream's units) of tone ``k`` at ``frequencies[i, k]`` for each point ``i``:
        one request per point (set every tone, then ``get_samples(sweep_samples, average=True)``)."""
        freqs = np.atleast_2d(np.asarray(frequencies, dtype=float))
        n_tones = freqs.shape[1]
        if n_tones > self.max_sweep_tones(line):
            raise InstrumentError(self.name, self.address, f"{n_tones} sweep tones on module {line}; "
                                                           f"the packets carry {self.max_sweep_tones(line)}")
        module, offsets, amplitude = self._checked(line, freqs)
        m = module.module
        # other tones on the module are switched off: the ones set now, and what an earlier sweep left
        on = {c for mm, c, _, _ in self.read_tones() if mm == m} | set(range(1, self._swept.get(m, 0) + 1))
        setup: list[TuberCall] = [("set_amplitude", (amplitude,), {"channel": k + 1, "module": m})
                                  for k in range(n_tones)]
        setup += [call for c in sorted(on) if c > n_tones for call in (
            ("set_amplitude", (0.0,), {"channel": c, "module": m}), ("set_frequency", (0.0,), {"channel": c, "module": m}))]
        self._swept[m] = max(self._swept.get(m, 0), n_tones)
        out = np.empty(freqs.shape, np.complex128)
        n_avg = int(self.sweep_samples())
        for i in range(freqs.shape[0]):
            calls: list[TuberCall] = setup if i == 0 else []
            calls = calls + [("set_frequency", (float(offsets[i, k]),), {"channel": k + 1, "module": m})
                             for k in range(n_tones)]
            calls.append(("get_samples", (n_avg,), {"average": True, "channel": None, "module": m}))
            samples = self.tuber.batch(calls)[-1]
            out[i] = _mean_iq(samples, n_tones)
        for k in range(n_tones):  # the parameters' caches follow what the board now holds
            if k < len(module.channels):
                module.channels[k].frequency.cache.set(float(offsets[-1, k]))
                module.channels[k].amplitude.cache.set(amplitude)
        return out

    def set_tones(self, line: int, frequencies: np.ndarray) -> None:
        """Stream ``frequencies`` (RF, Hz) on the module's first channels; every other channel a sweep
        used is switched off (amplitude and frequency 0). Through the channels' parameters where they
        exist (validators and station limits apply)."""
        freqs = np.atleast_1d(np.asarray(frequencies, dtype=float))
        module = self.module(line)
        if freqs.size > len(module.channels):
            raise InstrumentError(self.name, self.address, f"{freqs.size} tones for module {line}, which has "
                                                           f"{len(module.channels)} channels (channels_per_module)")
        if freqs.size:
            _, offsets, amplitude = self._checked(line, freqs[None, :])
            for k in range(freqs.size):
                module.channels[k].frequency(float(offsets[0, k]))
                module.channels[k].amplitude(amplitude)
        off = range(freqs.size + 1, max(len(module.channels), self._swept.get(module.module, 0)) + 1)
        if off:
            # switching a tone off is never unsafe: straight to the board, in one request
            self.tuber.batch([call for c in off for call in (
                ("set_amplitude", (0.0,), {"channel": c, "module": module.module}),
                ("set_frequency", (0.0,), {"channel": c, "module": module.module}))])
            for ch in module.channels[freqs.size:]:
                ch.amplitude.cache.set(0.0)
                ch.frequency.cache.set(0.0)
        self._swept[module.module] = 0


def _cache(parameter: Parameter, value: float) -> None:
    """Record a value read in a batch as the parameter's latest (a never-set one, NaN, is left alone)."""
    if np.isfinite(value):
        parameter.cache.set(value)


def _mean_iq(samples: Any, n_tones: int) -> np.ndarray:
    """The mean IQ of the first ``n_tones`` channels of a ``get_samples(..., channel=None)`` answer."""
    if isinstance(samples, dict) and isinstance(samples.get("mean"), dict):
        i, q = samples["mean"]["i"], samples["mean"]["q"]
        return np.asarray(i[:n_tones], float) + 1j * np.asarray(q[:n_tones], float)
    i = np.asarray(samples["i"], float)[:n_tones]
    q = np.asarray(samples["q"], float)[:n_tones]
    return i.mean(axis=1) + 1j * q.mean(axis=1)
