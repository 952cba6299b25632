"""DSP throughput figures: PFB vs bare rfft, matched-filter trigger, ToneChannelizer (and its cost per tone).

Run: ``python benchmarks/dsp.py [--json FILE] [--quick]``.  Prints one line per figure;
ratios are measured within one run (the machine is shared and noisy): best of
``--repeat`` runs each, the two sides of a ratio run alternately.  Targets (issue 13): PFB
>= 0.7x the bare rfft of the same data with 1 worker, fed int16 ADC samples as the pipeline
feeds it (float32 input shown too); matched-filter trigger >= 250 MS/s on 2 workers;
``ToneChannelizer`` >= 150 MS/s for the demo configuration (64 bins, 8 tones), and its
cost per tone measured up to 2048 tones (PFB bins scaled to 4x the tones).

With cupy and a GPU present it also measures the PFB with data resident on the device
as a fraction of the HBM roofline (int16 in, 2 B per sample, + complex64 out, 8 B per
bin at M/2+1 bins per M samples ~ 4 B per sample: 6 B per input sample; 3.35 TB/s on an
H100 SXM -> ~558 GS/s) and times ``cupyx.signal.channelize_poly`` on the same data.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

import numpy as np
import scipy.fft

from cryodaq.backend import get_backend, gpu_available, numpy_backend
from cryodaq.dsp import EdgeTrigger, PFBChannelizer, ToneChannelizer

HBM_BYTES_PER_S = {"H100": 3.35e12, "H200": 4.8e12}


def _best(fn: Callable[[], Any], repeat: int, sync: Callable[[], None] = lambda: None) -> float:
    fn()
    sync()
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def _best_pair(a: Callable[[], Any], b: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best times of ``a`` and ``b`` run alternately, so load changes hit both alike."""
    a(), b()
    ta = tb = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta, tb = min(ta, t1 - t0), min(tb, t2 - t1)
    return ta, tb


def bench_pfb(n_samples: int, repeat: int, workers: int) -> dict[str, float]:
    m, taps = 4096, 8
    x = np.random.default_rng(0).normal(size=n_samples).astype(np.float32)
    x16 = np.clip(np.rint(x * 3000), -32768, 32767).astype(np.int16)  # what the ADC delivers
    backend = numpy_backend(fft_workers=workers if workers > 1 else None)
    pfb = PFBChannelizer(m, taps, backend=backend)
    n_frames = (n_samples - m * taps) // m + 1
    frames = x[: n_frames * m].reshape(n_frames, m)
    out: dict[str, float] = {}
    for name, data in (("int16", x16), ("float32", x)):
        t_fft, t_pfb = _best_pair(lambda: scipy.fft.rfft(frames, axis=-1, workers=workers),
                                  lambda: pfb.channelize(data), repeat)
        out[f"pfb_{name}_ms_per_s_w{workers}"] = n_samples / t_pfb / 1e6
        out[f"pfb_{name}_over_rfft_w{workers}"] = t_fft / t_pfb
    out[f"rfft_ms_per_s_w{workers}"] = n_frames * m / t_fft / 1e6
    return out


def bench_trigger(n_samples: int, n_channels: int, repeat: int, workers: int) -> dict[str, float]:
    rate = 16e3
    t = np.arange(-16, 112) / rate
    tc = np.clip(t, 0, None)
    template = np.where(t >= 0, np.exp(-tc / 1.5e-3) - np.exp(-tc / 0.1e-3), 0.0)
    rng = np.random.default_rng(1)
    block = 1 << 15
    x = rng.normal(size=(n_samples, n_channels)).astype(np.float32)
    backend = numpy_backend(fft_workers=workers if workers > 1 else None)

    def run() -> None:
        trig = EdgeTrigger(template / template.max(), threshold_sigma=6.0, holdoff=64, template_presamples=16,
                           noise_samples=4096, presamples=32, record_length=128, backend=backend)
        for i in range(0, n_samples, block):
            trig.process(x[i : i + block], i)
        trig.finish()

    tt = _best(run, repeat)
    return {f"trigger_ms_per_s_{n_channels}ch_w{workers}": n_samples * n_channels / tt / 1e6}


def bench_tone_channelizer(seconds: float, repeat: int) -> dict[str, float]:
    fs, m = 2.048e6, 64
    tones = np.array([4, 7, 10, 13, 16, 19, 22, 25]) * fs / m + np.array([3e3, -2e3, 1e3, 4e3, -4e3, 2.5e3, 0, -1e3])
    n = int(seconds * fs)
    rng = np.random.default_rng(2)
    adc = rng.integers(-8000, 8000, size=n).astype(np.int16)
    block = 16 * 4096  # 16 packets per block

    def run() -> None:
        tc = ToneChannelizer(tones, fs, m, 8, decimation=2)
        for i in range(0, n, block):
            tc.process(adc[i : i + block])

    tt = _best(run, repeat)
    return {"tone_channelizer_x_realtime": seconds / tt, "tone_channelizer_ms_per_s": n / tt / 1e6}


def bench_tones(n_samples: int, repeat: int) -> dict[str, float]:
    """ToneChannelizer cost per tone: 8 .. 2048 tones, PFB channels the power of two >= 4x the tones."""
    fs = 2.048e6
    adc = np.random.default_rng(4).integers(-8000, 8000, size=n_samples).astype(np.int16)
    out: dict[str, float] = {}
    for n_tones in (8, 64, 256, 1024, 2048):
        m = max(64, 1 << int(np.ceil(np.log2(4 * n_tones))))
        tones = (np.linspace(4, m // 2 - 4, n_tones).round() + 0.1) * fs / m
        block = 1 << 18
        tc = ToneChannelizer(tones, fs, m, 8, decimation=2)  # set-up (filter design) is not streaming cost

        def run() -> None:
            tc.reset()
            for i in range(0, n_samples, block):
                tc.process(adc[i : i + block])

        tt = _best(run, repeat)
        out[f"tones_{n_tones}_m{m}_ms_per_s"] = n_samples / tt / 1e6
        out[f"tones_{n_tones}_ns_per_sample_per_tone"] = tt / n_samples / n_tones * 1e9
    return out


def bench_gpu(n_samples: int, repeat: int) -> dict[str, float]:
    """PFB with data on the GPU vs the HBM roofline; cupyx.signal.channelize_poly alongside."""
    gpu = get_backend("cupy")
    cp = gpu.xp
    sync = cp.cuda.get_current_stream().synchronize
    name = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    hbm = next((v for k, v in HBM_BYTES_PER_S.items() if k in name), HBM_BYTES_PER_S["H100"])
    m, taps = 4096, 8
    x16 = cp.asarray(np.random.default_rng(3).integers(-8000, 8000, size=n_samples).astype(np.int16))
    pfb = PFBChannelizer(m, taps, backend=gpu)
    t_pfb = _best(lambda: pfb.channelize(x16), repeat, sync)  # data, history and frames stay on the device
    roofline = hbm / 6.0  # samples/s: int16 in (2 B) + complex64 out (~4 B per real input sample)
    out = {
        "gpu_device": name,
        "gpu_pfb_gs_per_s": n_samples / t_pfb / 1e9,
        "gpu_pfb_fraction_of_hbm_roofline": n_samples / t_pfb / roofline,
    }
    try:
        from cupyx.signal import channelize_poly  # cupy >= 13

        h = pfb.prototype
        xf = x16.astype(cp.float32)  # channelize_poly takes float input, critically sampled only
        t_cp = _best(lambda: channelize_poly(xf, h, m), repeat, sync)
        out["gpu_channelize_poly_gs_per_s"] = n_samples / t_cp / 1e9
        out["gpu_pfb_over_channelize_poly"] = t_cp / t_pfb
    except Exception as exc:  # report, do not fail the CPU figures
        out["gpu_channelize_poly_error"] = repr(exc)
    out.update(bench_gpu_pipeline(gpu, repeat))
    return out


def bench_gpu_pipeline(gpu: Any, repeat: int, n_tones: int = 2048, seconds: float = 1.0) -> dict[str, float]:
    """The full MKID pipeline (PFB 8192 bins, 2048 tones, DDC, phase, trigger, spectra) on the GPU, fed
    from host memory: every block is uploaded and its results brought back, as in a live run."""
    from cryodaq.acquisition.pipeline import MKIDPipeline
    from cryodaq.config import PipelineConfig, TriggerConfig
    from cryodaq.readout.blocks import Block

    m = 8192
    fs = 2.048e6 * m / 64  # the demo's 16 kHz per tone at 2 taps of decimation
    n = int(seconds * fs)
    block = 1 << 22
    adc = np.random.default_rng(7).integers(-4000, 4000, size=n).astype(np.int16)
    tones = (np.linspace(4, m // 2 - 4, n_tones).round() + 0.1) * fs / m
    config = PipelineConfig(n_channels=m, n_taps=8, decimation=2, trigger=TriggerConfig(threshold_sigma=6.0))
    sync = gpu.xp.cuda.get_current_stream().synchronize

    def run() -> None:
        p = MKIDPipeline(config, fs=fs, tone_if_hz=tones, backend=gpu)
        p.monitor_spectra()
        for i in range(0, n, block):
            p.process(Block(i, i, adc[i:i + block], True))
        p.finish()

    t = _best(run, max(1, repeat // 2), sync)
    return {"gpu_mkid2048_pipeline_gs_per_s_from_host": n / t / 1e9, "gpu_mkid2048_x_realtime": seconds / t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--quick", action="store_true", help="smaller data (smoke run)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gpu-only", action="store_true", help="only the GPU figures (benchmarks/gpu_check.sh)")
    args = ap.parse_args()
    n_pfb = 1 << (20 if args.quick else 24)
    figures: dict[str, Any] = {}
    if args.gpu_only:
        if gpu_available():
            figures.update(bench_gpu(1 << (24 if args.quick else 28), args.repeat))
        else:
            figures["gpu"] = "skipped: cupy or a CUDA device is unavailable"
        _report(figures, args.json)
        return
    for w in (1, 2):
        figures.update(bench_pfb(n_pfb, args.repeat, w))
    for w in (1, 2):
        figures.update(bench_trigger((1 << 16) if args.quick else (1 << 18), 64, args.repeat, w))
    figures.update(bench_tone_channelizer(0.5 if args.quick else 4.0, args.repeat))
    figures.update(bench_tones((1 << 20) if args.quick else (1 << 23), max(1, args.repeat // 2)))
    if gpu_available():
        figures.update(bench_gpu(1 << 28, args.repeat))
    _report(figures, args.json)


def _report(figures: dict[str, Any], path: str | None) -> None:
    for k, v in figures.items():
        print(f"{k:40s} {v:.4g}" if isinstance(v, float) else f"{k:40s} {v}")
    if path:
        with open(path, "w") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
