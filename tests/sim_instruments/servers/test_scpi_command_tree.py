"""The SCPI command-tree framework: headers by the SCPI rules, suffixes, compound lines, errors, the common commands."""

from __future__ import annotations

import pytest

from sim_instruments.faces.rs_sgs100a import RohdeSchwarzSGS100AFace
from sim_instruments.servers.scpi_command_tree import CommandTree, ScpiFace
from sim_instruments.servers.scpi_parsing import split_program
from sim_instruments.world.world import World

JPA = {"paramp": {"enabled": True}}


def test_scpi_headers_match_short_and_long_forms_optional_nodes_and_suffixes():
    cs = CommandTree()
    cs.add("[SOURce]:FREQuency[:CW]", query=lambda s, a: "f")
    cs.add(":READ:SANalyzer#", query=lambda s, a: f"trace{s[0]}")
    for header in ("SOUR:FREQ?", ":source:frequency:cw?", "FREQ?", "Freq:CW?"):
        handler, suffixes = cs.lookup(header)
        assert handler(suffixes, "") == "f"
    handler, suffixes = cs.lookup(":READ:SAN1?")
    assert handler(suffixes, "") == "trace1"
    for bad in ("SOUR:FRE?", "SOUR:FREQ", "SOURCE:FREQUENCYX?", "READ:SAN?X"):
        with pytest.raises(Exception, match="-113"):
            cs.lookup(bad)
    assert split_program('*CLS;:PROG:REP 0;LOAD "a;b"') == ["*CLS", ":PROG:REP 0", 'LOAD "a;b"']


def test_scpi_suffixes_per_node_with_defaults_and_words_scoped_to_their_parent():
    cs = CommandTree()
    cs.add("[SENSe#]:CORRection:EDELay#[:TIME]", query=lambda s, a: f"edel{s}")
    cs.add("[SENSe]:ROSCillator", query=lambda s, a: "rosc")
    cs.add("STATus:OPERation", query=lambda s, a: "status")
    cs.add("OUTPut:STATe", query=lambda s, a: "state")  # STATe and STATus: both STAT, under other parents
    for header, expected in (("SENS1:CORR:EDEL2?", "edel(1, 2)"), ("CORR:EDEL3:TIME?", "edel(1, 3)"),
                             ("sense4:correction:edelay?", "edel(4, 1)"), ("ROSC?", "rosc"),
                             ("STAT:OPER?", "status"), ("OUTP:STATE?", "state")):
        handler, suffixes = cs.lookup(header)
        assert handler(suffixes, "") == expected, header
    for bad in ("SENS2:ROSC?", "CORR2:EDEL?", "STATE:OPER?", "OUTP:STATUS?"):  # no '#' there / wrong parent
        with pytest.raises(Exception, match="-113"):
            cs.lookup(bad)
    with pytest.raises(ValueError, match="STATUS"):
        cs.add("OUTPut:STATus", query=lambda s, a: "clash")  # STAT under OUTP is STATe already
    with pytest.raises(ValueError, match="query="):
        cs.add("OUTPut:STATe?", query=lambda s, a: "")


def test_a_failing_command_ends_the_program_message_but_earlier_replies_are_sent():
    face = RohdeSchwarzSGS100AFace(World(JPA))
    assert face.handle(":SOUR:FREQ 6e9;:SOUR:FREQ?;:SOUR:BOGUS?;:SOUR:POW -20") == "6000000000.0"
    assert face.values["power"] == -30.0  # the command after the failing one did not run
    assert face.handle("SYST:ERR?").startswith("-113") and face.handle("SYST:ERR?") == '0,"No error"'
    assert face.handle(":SOUR:POW 99;:SOUR:POW?") is None  # refused set: the query after it is not run
    assert face.handle("SYST:ERR?").startswith("-222")


def test_compound_commands_relative_paths_errors_and_command_log():
    face = RohdeSchwarzSGS100AFace(World(JPA))
    assert face.handle(":SOUR:FREQ 5e9;POW -12;:OUTP:STAT ON;:SOUR:FREQ?;POW?") == "5000000000.0;-12.0"
    assert face.values["output"] is True
    assert face.handle("SOUR:FREQ 99e9") is None  # out of range: refused, queued
    assert face.handle("SYST:ERR?").startswith("-222")
    assert face.values["frequency"] == 5e9
    assert face.handle("SOUR:BOGUS?") is None and face.handle("SYST:ERR?").startswith("-113")
    assert face.handle("SYST:ERR?") == '0,"No error"'
    assert face.received(r"^SOUR:FREQ 99e9$") == ["SOUR:FREQ 99e9"]


def test_scpi_face_base_is_abstract_enough_for_a_new_instrument():
    """A face built on ScpiFace gets the common commands and the error queue."""
    face = ScpiFace(World())
    assert face.handle("*IDN?") == ScpiFace.idn and face.handle("*OPC?") == "1"
    assert face.handle("*IDN?;*OPC?") == f"{ScpiFace.idn};1"


def test_scpi_tree_forms_suffixes_optional_nodes_and_compound_lines():
    face = ScpiFace(World())
    add = face.commands.add
    seen = []
    add("[SENSe#]:FREQuency:STARt", set=lambda s, a: seen.append((s, a)), query=lambda s, a: f"start{s[0]}")
    add("SOURce#:POWer#[:LEVel]", query=lambda s, a: f"pow{s}")
    add("DISPlay:LAYout", set=lambda s, a: seen.append(("lay", a)))
    add("DISPlay:LAYout:GRID", set=lambda s, a: seen.append(("grid", a)))
    add("*WAI", set=lambda s, a: seen.append("wai"))
    assert face.handle("SENS2:FREQ:STAR 5e9") is None
    assert face.handle("sense:frequency:start?") == "start1"
    assert face.handle("FREQ:STAR?") == "start1"  # optional node left out
    assert face.handle(":SOURce3:POW2:LEVel?") == "pow(3, 2)"
    assert face.handle("SENS:FREQ:STAR?;:SOUR:POW?") == "start1;pow(1, 1)"
    face.handle("DISP:LAY GRID;:DISP:LAY:GRID 2,1; *WAI")
    assert seen == [((2,), "5e9"), ("lay", "GRID"), ("grid", "2,1"), "wai"]
    assert face.handle("SYST:ERR?") == '0,"No error"'
    assert face.handle("SENS:FREQ:FOO?") is None  # unknown: no reply, error queued
    assert face.handle("SYST:ERR?").startswith("-113,")
    assert split_program("CALC:PAR:SEL 'a;b';*WAI") == ["CALC:PAR:SEL 'a;b'", "*WAI"]
