"""The strict test backend holds code to cupy's rules at the host boundary, and the Backend counts crossings."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.backend import get_backend, numpy_backend
from cryodaq.strict_backend import SCALAR_READS, ImplicitTransferError, StrictArray, xp


@pytest.fixture
def strict():
    return get_backend("strict")


def test_arrays_compute_like_numpy_and_stay_strict(strict) -> None:
    a = strict.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    b = (a * 2 + 1) @ a.T
    b += 1
    c = np.concatenate([a, a]).sum(axis=0)  # numpy functions dispatch to the strict arrays (as on cupy)
    d = xp.unwrap(xp.angle(xp.exp(1j * a)), axis=0)
    for r in (b, c, d, a.max(), a[1:, ::2], xp.lib.stride_tricks.as_strided(a, (2, 2), (16, 4))):
        assert isinstance(r, StrictArray)
    ref = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(strict.to_numpy(b), (ref * 2 + 1) @ ref.T + 1)
    np.testing.assert_allclose(strict.to_numpy(xp.fft.rfft(a, axis=-1)), np.fft.rfft(ref, axis=-1), rtol=1e-6)


@pytest.mark.parametrize("leak", [
    lambda a: np.asarray(a),                      # device -> host, implicitly
    lambda a: a.tolist(),
    lambda a: np.array(a[0]),
    lambda a: a + np.ones(4, np.float32),         # a host array mixed into arithmetic
    lambda a: a[np.array([0, 1])],                # a host index array
    lambda a: a.__setitem__(0, np.zeros(4)),      # a host array assigned in
    lambda a: xp.asarray(np.zeros(3)),            # host data made a device array without the Backend
    lambda a: xp.concatenate([a, np.zeros((1, 4))]),
])
def test_hidden_round_trips_raise(strict, leak) -> None:
    a = strict.asarray(np.zeros((3, 4), np.float32))
    with pytest.raises(ImplicitTransferError, match="Backend.asarray"):
        leak(a)


def test_scalars_mix_and_size_one_arrays_read_back_as_on_cupy(strict) -> None:
    a = strict.asarray(np.array([1.5, 2.5], np.float32))
    before = SCALAR_READS[0]
    assert float(a.sum()) == 4.0 and bool(a[0] < a[1]) and (a * np.float32(2)).shape == (2,)
    assert SCALAR_READS[0] == before + 2
    with pytest.raises(AttributeError, match="cupy has no"):
        xp.poly1d  # noqa: B018 - a numpy-only name is refused


def test_backend_counts_each_crossing_once(strict) -> None:
    log = strict.transfers
    before = log.counts()
    x = strict.asarray(np.zeros(1000, np.int16))
    y = strict.asarray(x)  # already on the device: no transfer
    assert y is x and log.counts() == (before[0] + 1, before[1])
    host = strict.to_host(x * 2, x.astype(np.float32), None)  # several arrays: one crossing
    assert [type(h) for h in host] == [np.ndarray, np.ndarray, type(None)]
    assert log.counts() == (before[0] + 1, before[1] + 1)
    assert log.bytes_to_host >= 1000 * 2 + 1000 * 4
    cpu = numpy_backend()
    ones = np.ones(2)
    assert cpu.to_host(ones)[0] is ones  # the host backend copies nothing and counts nothing
    assert not cpu.device and cpu.transfers.counts() == (0, 0)


def test_strict_is_selectable_but_not_advertised() -> None:
    assert get_backend("strict").device and get_backend("strict").name == "strict"
    with pytest.raises(ValueError, match="auto, numpy, cupy"):
        get_backend("gpu")
