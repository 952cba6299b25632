"""Trigger efficiency and false-trigger rate versus SNR on simulated streams.

Streams at 16 kHz (the demo's phase timestream after the DDC) with white + 1/f noise
(knee 10 Hz) and two-pole pulses (rise 0.1 ms, decay 1.5 ms) at known Poisson arrival
times (5 /s, at least 40 ms apart so pile-up does not blur the figures).  SNR = pulse
peak / white-noise sigma.  A trigger matches an arrival when it falls in
[-4, +12] samples of it; unmatched triggers are false.  Prints a markdown table
(the one in docs/trigger-performance.md).

Run: ``python benchmarks/trigger_efficiency.py [--seconds 60] [--channels 16]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from cryodaq.dsp import EdgeTrigger, EventBatch, ThresholdTrigger

FS = 16e3
RISE, DECAY = 0.1e-3, 1.5e-3
KNEE_HZ = 10.0
BLOCK = 4096
MATCH = (-4, 12)


def pulse_shape(n: int = 128) -> np.ndarray:
    t = np.arange(n) / FS
    s = np.exp(-t / DECAY) - np.exp(-t / RISE)
    return s / s.max()


def noise(n: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Unit white noise plus 1/f with the given knee, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.normal(size=(channels, n)), axis=1)
    f = np.fft.rfftfreq(n, 1 / FS)
    f[0] = f[1]
    spec *= np.sqrt(1 + KNEE_HZ / f)
    return np.fft.irfft(spec, n=n, axis=1).T.astype(np.float32)


def arrivals(n: int, rng: np.random.Generator, rate: float = 5.0, min_gap: float = 0.04) -> np.ndarray:
    t = np.cumsum(min_gap + rng.exponential(1 / rate - min_gap, size=int(n / FS * rate * 2)))
    t = (t * FS).astype(np.int64)
    return t[(t > 2000) & (t < n - 200)]


def simulate(snr: float, seconds: float, channels: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    x = noise(n, channels, rng)
    shape = pulse_shape()
    truth = []
    for c in range(channels):
        a = arrivals(n, rng) if snr > 0 else np.zeros(0, np.int64)
        for t0 in a:
            x[t0 : t0 + shape.size, c] += snr * shape
        truth.append(a)
    return x, truth


def run(trig, x: np.ndarray) -> EventBatch:
    out = [trig.process(x[i : i + BLOCK], i) for i in range(0, x.shape[0], BLOCK)]
    out.append(trig.finish())
    return EventBatch.concat(out)


def score(ev: EventBatch, truth: list[np.ndarray], seconds: float) -> tuple[float, float]:
    found = false = total = 0
    for c, a in enumerate(truth):
        got = np.sort(ev.sample_index[ev.channel == c])
        total += a.size
        matched = np.zeros(got.size, bool)
        if a.size and got.size:
            lo = np.searchsorted(got, a + MATCH[0])
            hi = np.searchsorted(got, a + MATCH[1], side="right")
            hit = hi > lo
            found += int(hit.sum())
            for i, j in zip(lo[hit], hi[hit]):
                matched[i:j] = True
        false += int((~matched).sum())
    eff = found / total if total else float("nan")
    return eff, false / (seconds * len(truth))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--channels", type=int, default=16)
    args = ap.parse_args()
    template = np.r_[np.zeros(8), pulse_shape()]
    snrs = [0, 1, 1.5, 2, 3, 4, 5, 6, 8, 10]
    print(f"{args.channels} channels x {args.seconds:g} s at {FS / 1e3:g} kHz per SNR; "
          f"white + 1/f noise (knee {KNEE_HZ:g} Hz); pulses 5/s per channel")
    print()
    print("| SNR (peak / white sigma) | matched filter 5 sigma: efficiency | false /s/ch "
          "| threshold 5 sigma: efficiency | false /s/ch |")
    print("|---:|---:|---:|---:|---:|")
    for i, snr in enumerate(snrs):
        x, truth = simulate(snr, args.seconds, args.channels, seed=100 + i)
        mf = EdgeTrigger(template, threshold_sigma=5.0, holdoff=136, template_presamples=8,
                         noise_samples=8192, presamples=32, record_length=128)
        # First-slice trigger: 5 sigma of the white noise over a 64-sample moving baseline.
        th = ThresholdTrigger(5.0 * np.sqrt(1 + 1 / 64), holdoff=48, baseline_samples=64,
                              presamples=64, record_length=160)
        e1, f1 = score(run(mf, x), truth, args.seconds)
        e2, f2 = score(run(th, x), truth, args.seconds)
        fmt = lambda e: "—" if np.isnan(e) else f"{100 * e:.1f} %"  # noqa: E731
        print(f"| {snr:g} | {fmt(e1)} | {f1:.3g} | {fmt(e2)} | {f2:.3g} |")


if __name__ == "__main__":
    main()
