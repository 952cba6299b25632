"""Named, stored, combinable cuts on event columns.

A :class:`Cut` keeps the events whose column lies in ``[lo, hi]`` — one range for every channel
or one per channel (learnt limits differ between pixels). A :class:`CutSet` gives each cut a bit:
:meth:`CutSet.evaluate` returns a uint32 mask per event with the bit of every cut it **fails**,
which is what ``analysis/<label>/cuts`` stores; :meth:`CutSet.good` combines any subset of the cuts
(all by default) into "passes them all". Two kinds are learnt from the data (:func:`auto_cuts`):
outliers above ``median + n · 1.4826 · MAD`` per channel of ``pretrig_rms``, ``postpeak_deriv`` and
``residual_std`` (NIST mass2's ``pretrig_rms``/``postpeak_deriv`` defaults, plus the filter residual).
Flag cuts drop events with given :class:`~cryodaq.dsp.EventFlag` bits; state cuts keep events of
given experiment-state labels (DASTARD's experiment-state file, :mod:`cryodaq.storage.experiment_state`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryodaq.dsp.stats import MAD_TO_SIGMA

__all__ = ["AUTO_CUT_COLUMNS", "Cut", "CutSet", "auto_cuts"]

#: columns :func:`auto_cuts` learns upper limits for (when present)
AUTO_CUT_COLUMNS = ("pretrig_rms", "postpeak_deriv", "residual_std")
ALL_CHANNELS = -1


@dataclass(frozen=True)
class Cut:
    """Keep events with ``lo <= column <= hi`` (None: open side; NaN fails).

    ``limits`` maps a channel to its ``(lo, hi)``; :data:`ALL_CHANNELS` (-1) applies to channels
    without their own. ``kind`` says where it came from: ``range`` (given), ``auto`` (learnt),
    ``flags`` (``column`` is ``flags``, keep events with none of the bits in ``lo``), ``state``
    (``column`` is ``state``, keep the labels in ``labels``).
    """

    name: str
    column: str
    limits: Mapping[int, tuple[float | None, float | None]] = field(default_factory=dict)
    kind: str = "range"
    labels: tuple[str, ...] = ()
    description: str = ""

    def passes(self, columns: Mapping[str, Any], channel: Any) -> np.ndarray:
        """True where an event passes this cut."""
        if self.column not in columns:
            raise KeyError(f"cut {self.name!r} needs column {self.column!r}; have {sorted(columns)}")
        col = np.asarray(columns[self.column])
        if self.kind == "flags":
            bits = int(self.limits[ALL_CHANNELS][0] or 0)
            return (col.astype(np.int64) & bits) == 0
        if self.kind == "state":
            return np.isin(col.astype(str), list(self.labels))
        col = col.astype(float)
        ch = np.asarray(channel)
        out = np.ones(col.shape, bool)
        default = self.limits.get(ALL_CHANNELS, (None, None))
        own = [c for c in self.limits if c != ALL_CHANNELS]
        lo = np.full(col.shape, -np.inf)
        hi = np.full(col.shape, np.inf)
        if default[0] is not None:
            lo[:] = default[0]
        if default[1] is not None:
            hi[:] = default[1]
        for c in own:
            sel = ch == c
            a, b = self.limits[c]
            lo[sel] = -np.inf if a is None else a
            hi[sel] = np.inf if b is None else b
        with np.errstate(invalid="ignore"):
            out &= (col >= lo) & (col <= hi)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "column": self.column, "kind": self.kind, "labels": list(self.labels),
                "limits": {str(k): [None if v is None else float(v) for v in lim] for k, lim in self.limits.items()},
                "description": self.description}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Cut:
        limits = {int(k): (None if v[0] is None else float(v[0]), None if v[1] is None else float(v[1]))
                  for k, v in doc.get("limits", {}).items()}
        return cls(doc["name"], doc["column"], limits, doc.get("kind", "range"), tuple(doc.get("labels", ())),
                   doc.get("description", ""))


class CutSet:
    """Cuts in a fixed order; cut ``i`` owns bit ``i`` of the stored mask (at most 32)."""

    def __init__(self, cuts: Sequence[Cut] = ()) -> None:
        self.cuts: list[Cut] = []
        for c in cuts:
            self.add(c)

    def add(self, cut: Cut) -> None:
        if any(c.name == cut.name for c in self.cuts):
            raise ValueError(f"cut {cut.name!r} is defined twice")
        if len(self.cuts) >= 32:
            raise ValueError("at most 32 cuts fit the stored uint32 mask")
        self.cuts.append(cut)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cuts]

    def bit(self, name: str) -> int:
        for i, c in enumerate(self.cuts):
            if c.name == name:
                return 1 << i
        raise KeyError(f"no cut {name!r}; cuts are {self.names}")

    def evaluate(self, columns: Mapping[str, Any], channel: Any) -> np.ndarray:
        """uint32 per event: the bits of the cuts it fails."""
        n = len(np.asarray(channel))
        mask = np.zeros(n, np.uint32)
        for i, c in enumerate(self.cuts):
            mask[~c.passes(columns, channel)] |= np.uint32(1 << i)
        return mask

    def good(self, mask: Any, use: Sequence[str] | None = None) -> np.ndarray:
        """True where an event passes every cut in ``use`` (default: all), from a stored mask."""
        bits = 0
        for name in (self.names if use is None else use):
            bits |= self.bit(name)
        return (np.asarray(mask, dtype=np.uint32) & np.uint32(bits)) == 0

    def as_list(self) -> list[dict[str, Any]]:
        return [{"bit": i, **c.as_dict()} for i, c in enumerate(self.cuts)]

    @classmethod
    def from_list(cls, docs: Sequence[Mapping[str, Any]]) -> CutSet:
        return cls([Cut.from_dict(d) for d in sorted(docs, key=lambda d: int(d.get("bit", 0)))])


def auto_cuts(columns: Mapping[str, Any], channel: Any, *, n_sigma: float = 8.0, use: Any = None,
              names: Sequence[str] = AUTO_CUT_COLUMNS) -> list[Cut]:
    """Upper-limit cuts ``median + n_sigma · 1.4826 · MAD`` per channel, learnt from the events in ``use``
    (default all), for each column of ``names`` present in ``columns``."""
    ch = np.asarray(channel)
    sel = np.ones(ch.shape, bool) if use is None else np.asarray(use, bool)
    out = []
    for name in names:
        if name not in columns:
            continue
        col = np.asarray(columns[name], dtype=float)
        limits: dict[int, tuple[float | None, float | None]] = {}
        for c in np.unique(ch):
            v = col[(ch == c) & sel & np.isfinite(col)]
            if v.size < 5:
                continue
            med = float(np.median(v))
            mad = float(np.median(np.abs(v - med)))
            limits[int(c)] = (None, med + n_sigma * MAD_TO_SIGMA * mad)
        out.append(Cut(f"auto_{name}", name, limits, "auto",
                       description=f"{name} <= median + {n_sigma:g} x 1.4826 MAD, per channel"))
    return out
