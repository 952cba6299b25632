"""``cryodaq run`` refuses what cannot work before any instrument is touched, in one line (exit 2, nothing
created), and ``--duration`` takes only what means something: seconds > 0, or none / inf."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from cryodaq.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "stations" / "demo_mkid.yaml"


def station(tmp_path: Path, edit) -> Path:  # noqa: ANN001 - a function editing the document
    doc = yaml.safe_load(DEMO.read_text())
    edit(doc)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def unreachable(doc: dict) -> None:
    """Real hardware at addresses where nothing answers: touching an instrument would fail differently."""
    doc["cryodaq"]["simulation"]["enabled"] = False
    doc["cryodaq"]["publish"]["address"] = "tcp://127.0.0.1:0"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv, "-q"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_output_directory_that_cannot_be_written_is_refused_before_the_instruments(tmp_path, capsys):
    path = station(tmp_path, unreachable)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code, out, err = run_cli(capsys, str(path), "--out", str(blocker / "runs"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err  # one line, not a traceback (and not wrapped at 80 columns)
    assert err.startswith(f"error: output directory {blocker / 'runs'}: cannot write a run there: "), err
    assert "Connected to" not in err and "could not be opened" not in err  # no instrument was touched


def test_too_little_free_disk_is_refused_before_the_instruments(tmp_path, capsys):
    code, out, err = run_cli(capsys, str(station(tmp_path, unreachable)), "--out", str(tmp_path / "runs"),
                             "--min-free-gb", "1e9")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "MB free on its disk; a run needs at least 1000000000000 MB" in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_simulator_port_in_use_is_one_line_naming_instrument_key_and_port(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]

        def edit(doc):
            doc["cryodaq"]["simulation"]["auto_ports"] = False
            doc["instruments"]["readout"]["address"] = f"TCPIP0::127.0.0.1::{port}::SOCKET"
            doc["instruments"]["fridge_thermometer"]["address"] = "TCPIP0::127.0.0.1::0::SOCKET"

        path = station(tmp_path, edit)
        code, out, err = run_cli(capsys, str(path), "--out", str(tmp_path / "runs"))
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: {path}: instruments.readout.address: simulated instrument 'readout' cannot "
                          f"listen on TCP port {port} of 127.0.0.1: in use by another program;"), err
    assert not (tmp_path / "runs").exists()


def test_a_data_port_in_use_is_one_line_naming_the_key_and_port(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        port = other.getsockname()[1]
        path = station(tmp_path, lambda doc: (unreachable(doc), doc["cryodaq"]["readout"].update(data_port=port)))
        code, out, err = run_cli(capsys, str(path), "--out", str(tmp_path / "runs"))
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert f"{path}: cryodaq.readout.data_port: the UDP data receiver of 'readout' cannot listen on UDP port " \
           f"{port} of 127.0.0.1: in use by another program" in err, err


@pytest.mark.parametrize("text", ["0", "-1", "nan", "-inf", "soon"])
def test_a_duration_that_means_nothing_is_refused(text, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["run", "demo_mkid", f"--duration={text}"])
    assert info.value.code == 2
    assert "--duration: expected seconds" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "value"), [("2.5", 2.5), ("none", None), ("None", None), ("inf", None)])
def test_a_duration_is_seconds_or_until_stopped(text, value):
    assert build_parser().parse_args(["run", "demo_mkid", "--duration", text]).duration == value
    assert build_parser().parse_args(["demo"]).duration == 30.0
    assert build_parser().parse_args(["run", "demo_mkid"]).duration is None


def test_a_publisher_port_taken_after_the_check_is_a_one_line_warning(tmp_path, capsys):
    """The live view is not worth the run: at bind time a taken port is the same line, as a warning."""
    from cryodaq.cli import _live_publisher
    from cryodaq.station import load_station_config

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        path = station(tmp_path, lambda doc: doc["cryodaq"]["publish"].update(address=f"tcp://127.0.0.1:{port}"))
        assert _live_publisher(load_station_config(path)) == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"warning: {path}: cryodaq.publish.address: the live publisher cannot listen on TCP port "
                          f"{port} of 127.0.0.1: in use by another program;"), err
    assert err.rstrip().endswith("; running without live view")


def test_publish_moves_or_turns_off_the_live_view(capsys):
    from cryodaq.cli import _with_publish
    from cryodaq.station import load_station_config

    parse = build_parser().parse_args
    config = load_station_config(DEMO)
    moved = _with_publish(config, parse(["demo", "--publish", "tcp://127.0.0.1:0"]).publish)
    assert moved.publish.enabled and moved.publish.address == "tcp://127.0.0.1:0"
    assert not _with_publish(config, parse(["demo", "--publish", "off"]).publish).publish.enabled
    assert _with_publish(config, parse(["demo"]).publish) is config
    with pytest.raises(SystemExit):
        parse(["demo", "--publish", "127.0.0.1:5556"])
    assert "--publish: expected 'off' or a ZeroMQ address" in capsys.readouterr().err
