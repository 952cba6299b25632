"""The Bluefors control-unit face: its HTTP/JSON values API, closed loop, faults, launcher."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from sim_instruments.faces.bluefors import HEATER, BlueforsControlUnitFace
from sim_instruments.servers.launcher import serve
from sim_instruments.world.thermometer import ruox_ohm
from sim_instruments.world.world import World

MXC = "mapper/bf/temperatures/t6"


@pytest.fixture
def sim():
    world = World({"fridge": {"tau_s": 0.05}})
    with BlueforsControlUnitFace(world, port=0, api_key="secret") as face:
        yield face


def call(face: BlueforsControlUnitFace, method: str, route: str, body: object = None, key: str | None = "secret",
         query: str = "") -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    req = urllib.request.Request(f"{face.url}/{route}{query}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def latest(reply: dict, path: str) -> float:
    return float(reply["data"][path]["content"]["latest_value"]["value"])


def test_get_one_value_in_the_api_format(sim):
    status, reply = call(sim, "GET", f"values/{MXC}")
    assert status == 200
    entry = reply["data"][MXC]["content"]["latest_value"]
    assert entry["status"] == "SYNCHRONIZED"
    assert isinstance(entry["value"], str)
    assert float(entry["value"]) == pytest.approx(0.012, rel=0.01)
    assert abs(entry["date"] / 1000 - time.time()) < 60


def test_get_a_subtree_and_the_default_channels(sim):
    _, reply = call(sim, "GET", "values/mapper/bf/temperatures")
    assert sorted(reply["data"]) == [f"mapper/bf/temperatures/t{n}" for n in (1, 2, 5, 6)]
    assert latest(reply, "mapper/bf/temperatures/t1") == 45.0
    assert 0.8 < latest(reply, "mapper/bf/temperatures/t5") < 0.9
    _, r = call(sim, "GET", "values/mapper/bf/resistances/r1")
    assert latest(r, "mapper/bf/resistances/r1") == pytest.approx(ruox_ohm(45.0))
    _, p = call(sim, "GET", "values/mapper/bf/pressures/p5")
    assert latest(p, "mapper/bf/pressures/p5") == 720.0


def test_api_key_and_errors(sim):
    status, reply = call(sim, "GET", f"values/{MXC}", key=None)
    assert status == 401 and "API key" in reply["error"]["message"]
    assert call(sim, "GET", f"values/{MXC}", key="wrong")[0] == 401
    assert call(sim, "GET", f"values/{MXC}", key=None, query="?key=secret")[0] == 200
    status, reply = call(sim, "GET", "values/mapper/bf/temperatures/t9")
    assert status == 404 and "t9" in reply["error"]["message"]
    status, reply = call(sim, "POST", "values", {"data": {MXC: {"content": {"value": "1"}}}})
    assert status == 403 and "read-only" in reply["error"]["message"]
    assert call(sim, "POST", "values", {"nodata": 1})[0] == 400


def test_a_bad_batch_changes_nothing(sim):
    before = latest(call(sim, "GET", f"values/{HEATER}/setpoint")[1], f"{HEATER}/setpoint")
    status, reply = call(sim, "POST", "values", {"data": {
        f"{HEATER}/setpoint": {"content": {"value": "0.2"}},
        f"{HEATER}/max_power": {"content": {"value": "-1"}},
    }})
    assert status == 400 and "max_power" in reply["error"]["message"]
    assert latest(call(sim, "GET", f"values/{HEATER}/setpoint")[1], f"{HEATER}/setpoint") == before == 0.0
    assert sim.heater.max_power_w == 1e-3


def test_closed_loop_over_the_api(sim):
    status, reply = call(sim, "POST", "values", {"data": {
        f"{HEATER}/max_power": {"content": {"value": "0.002"}},
        f"{HEATER}/control_p": {"content": {"value": 10}},
        f"{HEATER}/control_i": {"content": {"value": 0.2}},
        f"{HEATER}/setpoint": {"content": {"value": "0.1"}},
        f"{HEATER}/pid_mode": {"content": {"value": "1"}},
        f"{HEATER}/active": {"content": {"value": "1"}},
    }})
    assert status == 200 and latest(reply, f"{HEATER}/setpoint") == 0.1
    deadline = time.monotonic() + 5
    while abs(sim.world.temperature_k() - 0.1) > 0.001 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert sim.world.temperature_k() == pytest.approx(0.1, abs=0.001)
    power = latest(call(sim, "GET", f"values/{HEATER}/power")[1], f"{HEATER}/power")
    assert power == pytest.approx(sim.world.fridge.power_for_k(0.1), rel=0.05)
    # manual mode: the written power, capped at max_power
    call(sim, "POST", "values", {"data": {f"{HEATER}/pid_mode": {"content": {"value": 0}},
                                          f"{HEATER}/power": {"content": {"value": 0.5}}}})
    time.sleep(0.1)
    assert latest(call(sim, "GET", f"values/{HEATER}/power")[1], f"{HEATER}/power") == 0.002
    call(sim, "POST", "values", {"data": {f"{HEATER}/active": {"content": {"value": 0}}}})
    time.sleep(0.5)
    assert sim.world.temperature_k() < 0.02


def test_sim_warm_up_endpoint(sim):
    assert call(sim, "POST", "sim/fault/warmup", {"rate_k_per_s": 1.0, "target_k": 0.3})[0] == 200
    time.sleep(0.4)
    assert call(sim, "GET", "sim/truth/temperature")[1]["mxc_k"] > 0.2
    assert call(sim, "POST", "sim/fault/warmup/stop", {})[0] == 200
    time.sleep(0.5)
    assert sim.world.temperature_k() < 0.02
    assert call(sim, "POST", "sim/fault/warmup", {"rate": 1})[0] == 400


def test_garbage_fault_and_restart_on_the_same_port(sim):
    sim.faults.garbage = True
    req = urllib.request.Request(f"{sim.url}/values/{MXC}", headers={"X-API-Key": "secret"})
    with urllib.request.urlopen(req, timeout=2) as resp, pytest.raises(json.JSONDecodeError):
        json.loads(resp.read())
    sim.faults.garbage = False
    port = sim.port
    sim.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(req, timeout=1)
    sim.start()
    assert sim.port == port
    assert call(sim, "GET", f"values/{MXC}")[0] == 200


def test_launcher_accepts_http_and_visa_socket_addresses():
    cfg = {"instruments": {
        "bf": {"face": "bluefors", "address": "http://127.0.0.1:0", "channels": {6: "mxc", 3: 3.9}},
        "bf2": {"face": "bluefors", "address": "TCPIP0::127.0.0.1::0::SOCKET"},
    }}
    with serve(cfg) as servers:
        face = servers.faces["bf"]
        assert face.port > 0 and servers.faces["bf2"].port > 0
        _, reply = call(face, "GET", "values/mapper/bf/temperatures", key=None)
        assert sorted(reply["data"]) == ["mapper/bf/temperatures/t3", "mapper/bf/temperatures/t6"]
    with pytest.raises(ValueError, match="http://"):
        serve({"instruments": {"bf": {"face": "bluefors", "address": "ftp://x"}}})
