"""Fuzz: station files and reprocessing configs give a config or one StationConfigError naming the file."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryodaq.errors import CryodaqError
from cryodaq.reprocess import load_reprocess_config
from cryodaq.station import load_station_config

FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ROOT = Path(__file__).resolve().parents[2]
STATION = yaml.safe_load((ROOT / "stations" / "demo_mkid.yaml").read_text())
REPROCESS = yaml.safe_load((ROOT / "docs" / "examples" / "reprocess.yaml").read_text())

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
                    st.sampled_from(["", "0", "-1", "1e309", "nan", "inf", "tcp://*:x", "127.0.0.1:99999",
                                     "cryodaq.instruments.Nope", "qcodes.Station", "phase", "numpy"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=10)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in a nested document (dict keys, list indices)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """A copy of ``doc`` with a few values replaced, deleted or added at random paths."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            doc = data.draw(values) if action == "replace" else doc
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if action == "replace":
            parent[path[-1]] = data.draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][data.draw(st.text(max_size=8))] = data.draw(values)
    return doc


def _load(loader: Any, text: str | bytes, fuzz: SimpleNamespace, name: str) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        try:
            return loader(path)
        except Exception as exc:  # noqa: BLE001 - the assertion is on its type
            fuzz.check_clean_error(exc, kinds=(CryodaqError,), names=str(path))
            assert isinstance(exc, ValueError)
            return None


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True)


@FUZZ
@given(data=st.data())
def test_mutated_station_files(fuzz: SimpleNamespace, data: st.DataObject) -> None:
    _load(load_station_config, _dump(_mutate(STATION, data)), fuzz, "station.yaml")


@FUZZ
@given(data=st.data())
def test_mutated_reprocess_configs(fuzz: SimpleNamespace, data: st.DataObject) -> None:
    _load(load_reprocess_config, _dump(_mutate(REPROCESS, data)), fuzz, "reprocess.yaml")


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200)),
       loader=st.sampled_from([load_station_config, load_reprocess_config]))
def test_any_text_or_bytes(fuzz: SimpleNamespace, text: str | bytes, loader: Any) -> None:
    _load(loader, text, fuzz, "config.yaml")


@FUZZ
@given(cut=st.integers(0, 4000), loader=st.sampled_from(["station", "reprocess"]))
def test_files_cut_short(fuzz: SimpleNamespace, cut: int, loader: str) -> None:
    src = ROOT / ("stations/demo_mkid.yaml" if loader == "station" else "docs/examples/reprocess.yaml")
    text = src.read_text()
    _load(load_station_config if loader == "station" else load_reprocess_config, text[: cut % (len(text) + 1)],
          fuzz, src.name)


def test_the_shipped_files_load() -> None:
    assert load_station_config(ROOT / "stations" / "demo_mkid.yaml").name
    assert load_reprocess_config(ROOT / "docs" / "examples" / "reprocess.yaml") is not None


def test_infinite_settings_are_refused(tmp_path: Path) -> None:
    """Found by probing the fuzzed keys with YAML's .inf: record_s: .inf was accepted (and broke reprocessing)."""
    for key in ("threshold_sigma", "holdoff_s", "record_s"):
        doc = copy.deepcopy(REPROCESS)
        doc["trigger"][key] = float("inf")
        path = tmp_path / f"{key}.yaml"
        path.write_text(_dump(doc))
        try:
            load_reprocess_config(path)
        except CryodaqError as exc:
            assert f"trigger.{key}" in str(exc) and str(path) in str(exc)
        else:
            raise AssertionError(f"{key}: .inf accepted")
