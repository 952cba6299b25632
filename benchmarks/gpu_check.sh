#!/usr/bin/env bash
# One-shot GPU check (issue 13), under 5 minutes on one GPU. Needs only numpy, scipy, cupy and
# pytest, with the project on PYTHONPATH (no install; no qcodes, zarr or numba on this path):
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# Prints: the GPU tests' result (device code path on cupy vs the same path on the strict test
# backend, one host<->device crossing each way per block), the PFB in GS/s with the data on the
# device as a fraction of the HBM roofline (goal >= 30 %) and against cupyx.signal.channelize_poly,
# and the full MKID pipeline at 2048 tones in GS/s fed from host memory, transfers included.
# Without cupy or a CUDA device every GPU figure is printed as skipped and the script still ends 0.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export CRYODAQ_BACKEND=auto
PY=${PYTHON:-python3}
echo "== machine"
"$PY" - <<'PYEOF'
import importlib.util
print("numpy", __import__("numpy").__version__, "| scipy", __import__("scipy").__version__, end=" | ")
if importlib.util.find_spec("cupy") is None:
    print("cupy: absent -> GPU figures skipped")
else:
    import cupy
    try:
        props = cupy.cuda.runtime.getDeviceProperties(0)
        print("cupy", cupy.__version__, "|", props["name"].decode(), f"{props['totalGlobalMem'] / 2**30:.0f} GiB")
    except Exception as exc:  # no driver / no device
        print("cupy", cupy.__version__, "| no CUDA device:", exc)
PYEOF
echo "== GPU tests (pytest -m gpu)"
timeout 180 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -m gpu \
    tests/acquisition/test_device_resident.py tests/dsp/test_pfb.py tests/dsp/test_ddc.py \
    tests/dsp/test_psd.py tests/dsp/test_trigger.py -rs 2>&1 | tail -15
echo "pytest exit status: ${PIPESTATUS[0]}"
echo "== GPU figures"
timeout 240 "$PY" benchmarks/dsp.py --gpu-only --repeat 3 || echo "gpu figures: failed (exit $?)"
exit 0
