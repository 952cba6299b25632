"""The ReadoutSource seam: the boards implement it, the receiving() dance is safe, pipelines follow the stream."""

from __future__ import annotations

import numpy as np
import pytest
from qcodes.instrument import Instrument

from cryodaq.acquisition.pipeline import IQPipeline, MKIDPipeline, RecordPipeline, TESPipeline, pipeline_for_source
from cryodaq.config import PipelineConfig
from cryodaq.errors import InstrumentError
from cryodaq.instruments import MKIDReadoutBoard, TESReadoutBoard
from cryodaq.readout import ReadoutSource, StreamDescription, receiving
from sim_instruments import launch

ADDRESS = "TCPIP0::127.0.0.1::0::SOCKET"


@pytest.fixture(scope="module")
def boards():
    cfg = {"world": {"tes": {"enabled": True}},
           "instruments": {"mkid": {"face": "mkid_readout_board", "address": ADDRESS},
                           "tes": {"face": "tes_readout_board", "address": ADDRESS}}}
    with launch(cfg, in_process=True) as sims:
        mkid = MKIDReadoutBoard("seam_mkid", sims.address("mkid"))
        tes = TESReadoutBoard("seam_tes", sims.address("tes"))
        yield sims, mkid, tes
        mkid.close()
        tes.close()
    Instrument.close_all()


def test_the_boards_are_readout_sources_and_describe_their_streams(boards):
    sims, mkid, tes = boards
    assert isinstance(mkid, ReadoutSource) and isinstance(tes, ReadoutSource)
    d = mkid.describe()
    assert d.kind == "adc" and d.sample_dtype == "int16" and d.n_channels == 8
    assert d.sample_rate_hz == sims.world.config.fs_hz
    np.testing.assert_allclose(d.channel_coords["tone_if_hz"],
                               d.channel_coords["tone_frequency_hz"] - mkid.lo_frequency())
    t = tes.describe()
    assert t.kind == "channels" and t.units == "A" and t.n_channels == 8
    np.testing.assert_allclose(t.counts_per_unit, sims.world.tes.counts_per_ampere())


def test_pipelines_follow_what_the_source_streams(boards):
    _, mkid, tes = boards
    cfg = PipelineConfig()
    mk = pipeline_for_source(cfg, mkid.describe())
    assert isinstance(mk, MKIDPipeline) and list(mk.channel_coords) == ["channel", "tone_if_hz", "tone_frequency_hz"]
    te = pipeline_for_source(cfg, tes.describe())
    assert isinstance(te, TESPipeline) and list(te.channel_coords) == ["channel", "counts_per_ampere"]
    records = StreamDescription(kind="records", sample_rate_hz=1e5, n_channels=2, sample_dtype="uint16",
                                source="dastard")
    assert isinstance(pipeline_for_source(cfg, records), RecordPipeline)
    iq = StreamDescription(kind="iq", sample_rate_hz=1e5, n_channels=2, sample_dtype="complex64", source="crs")
    assert isinstance(pipeline_for_source(cfg, iq), IQPipeline)
    other = StreamDescription(kind="adc", sample_rate_hz=1e5, n_channels=2, sample_dtype="int16", source="box")
    with pytest.raises(ValueError, match="box: an 'adc' stream needs the tones' IFs"):
        pipeline_for_source(cfg, other)
    with pytest.raises(ValueError, match="channel coordinate 'x' has 3 values for 2 channels"):
        StreamDescription(kind="iq", sample_rate_hz=1.0, n_channels=2, sample_dtype="complex64",
                          channel_coords={"x": np.zeros(3)})


def test_configure_sets_parameters_by_name_and_names_a_bad_one(boards):
    _, mkid, _ = boards
    tones = mkid.tone_frequencies()
    mkid.configure(tone_frequencies=tones + 1e3)
    np.testing.assert_allclose(mkid.tone_frequencies(), tones + 1e3)
    mkid.configure(tone_frequencies=tones)
    with pytest.raises(InstrumentError, match="seam_mkid.*no settable parameter 'tone_frequncies'"):
        mkid.configure(tone_frequncies=tones)
    with pytest.raises(InstrumentError, match="no settable parameter 'sample_rate'"):
        mkid.configure(sample_rate=1.0)  # read-only


def test_receiving_streams_then_stops_the_source_even_on_error(boards):
    _, _, tes = boards
    with receiving(tes, packets_per_block=1) as rx:
        assert tes.is_streaming()
        block = rx.blocks.get(timeout=5)
        assert block is not None and block.samples.shape[1] == 8 and block.continuous
    assert not tes.is_streaming()
    drained = []
    while (b := rx.blocks.get(timeout=5)) is not None:
        drained.append(b)
    with pytest.raises(RuntimeError, match="boom"), receiving(tes) as rx:
        raise RuntimeError("boom")
    assert not tes.is_streaming()  # stopped although the body failed


def test_receiving_refuses_a_source_that_already_streams(boards):
    _, _, tes = boards
    tes.start_stream("127.0.0.1", 9)  # another consumer's stream
    try:
        with pytest.raises(InstrumentError, match="seam_tes.*already streaming.*before this run"), \
                receiving(tes, purpose="this run"):
            pass
        assert tes.is_streaming()  # not taken over, not stopped
    finally:
        tes.stop_stream()


def test_a_station_readout_that_is_not_a_source_is_refused_naming_file_and_key(boards):
    from dataclasses import replace

    from qcodes.instrument_drivers.mock_instruments import DummyInstrument
    from qcodes.station import Station

    from cryodaq.acquisition.session import readout_source
    from cryodaq.errors import StationConfigError
    from cryodaq.station import load_station_config
    from cryodaq.station.shipped import station_path

    _, mkid, _ = boards
    config = load_station_config(station_path("demo_mkid"))
    dummy = DummyInstrument("seam_dummy")
    try:
        station = Station(mkid, dummy)
        ok = replace(config, readout=replace(config.readout, instrument="seam_mkid"))
        assert readout_source(station, ok) is mkid
        bad = replace(config, readout=replace(config.readout, instrument="seam_dummy"))
        with pytest.raises(StationConfigError, match=r"demo_mkid.yaml: cryodaq.readout.instrument: .*DummyInstrument"):
            readout_source(station, bad)
    finally:
        dummy.close()
