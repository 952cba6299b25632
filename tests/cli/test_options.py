"""The command line's shared pieces: renamed options keep their old spelling for a release, shipped
stations are found by name, and the top-level parser knows every subcommand."""

from __future__ import annotations

import argparse
from importlib.resources import files
from pathlib import Path

import pytest

from cryodaq.cli import build_parser
from cryodaq.cli_options import add_renamed_option
from cryodaq.station.shipped import (
    SCRIPTS_DIR,
    STATIONS_DIR,
    script_path,
    shipped_scripts,
    shipped_stations,
    station_path,
)


def test_renamed_option_takes_both_spellings_and_warns_on_the_old(capsys):
    p = argparse.ArgumentParser(prog="cryodaq reprocess")
    add_renamed_option(p, "--label", "--out", default=None, metavar="LABEL", help="label")
    assert p.parse_args(["--label", "a"]).label == "a"
    assert capsys.readouterr().err == ""
    assert p.parse_args(["--out", "b"]).label == "b"
    err = capsys.readouterr().err
    assert "--out is deprecated" in err and "use --label" in err
    assert p.parse_args([]).label is None
    assert "--out" not in p.format_help()  # the old spelling is not advertised


@pytest.mark.parametrize(("argv", "dest", "value"), [
    (["reprocess", "r.zarr", "--label", "x"], "label", "x"),
    (["reprocess", "r.zarr", "--out", "x"], "label", "x"),
    (["export", "r.zarr", "--output", "f.h5"], "output", "f.h5"),
    (["export", "r.zarr", "--out", "f.h5"], "output", "f.h5"),
    (["import", "f.ljh", "--output", "run"], "output", "run"),
    (["import", "f.ljh", "--out", "run"], "output", "run"),
    (["run", "demo_tes", "--out", "runs"], "out", "runs"),  # --out stays where it is a directory
])
def test_subcommands_use_one_name_per_meaning(argv, dest, value):
    args = build_parser().parse_args(argv)
    assert str(getattr(args, dest)) == value


def test_shipped_stations_and_scripts_are_package_data_found_by_name(tmp_path):
    # inside the installed package (a non-editable install has no source tree to look in)
    assert STATIONS_DIR == Path(str(files("cryodaq.stations")))
    assert (STATIONS_DIR / "demo_mkid.yaml").is_file()
    assert {"demo_mkid", "demo_tes", "demo_paramp", "demo_sweep", "demo_tes_sweep"} <= set(shipped_stations())
    assert {"resonator_overnight", "paramp_tuneup", "tes_iv", "tes_noise_vs_bias"} <= set(shipped_scripts())
    assert script_path("tes_iv") == script_path("tes_iv.py") == SCRIPTS_DIR / "tes_iv.py"
    assert station_path("demo_tes") == STATIONS_DIR / "demo_tes.yaml"
    assert station_path("demo_tes.yaml") == STATIONS_DIR / "demo_tes.yaml"
    mine = tmp_path / "demo_tes.yaml"
    mine.write_text("instruments: {}\n")
    assert station_path(mine) == mine  # an existing file wins over a shipped name
    assert station_path("no_such_station").name == "no_such_station"  # unchanged: loading it names the file
