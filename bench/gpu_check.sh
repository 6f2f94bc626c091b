#!/usr/bin/env bash
# The GPU check in one command, from the project root of a GPU machine whose image has torch, torchvision, timm,
# numpy, pandas, pyarrow (but not Ray, Optuna or kornia):
#
#   bench/gpu_check.sh [--only tests,step,epoch,pack] [--budget SECONDS] [--dry-run]
#
# 1. When ray / optuna do not import, installs them (and kornia) from the wheel kit .whl/ (built beforehand, on any
#    machine with internet, by ../shared/gpu/make-wheels.sh; the GPU machine has none) into /tmp/site.
# 2. Makes `import visionsweep` resolve to this tree (a temp folder holding a symlink visionsweep -> here).
# 3. Runs bench/gpu_check.py: the CUDA tests (tests/test_gpu.py), the throughput, epoch and trial-packing
#    benchmarks, then prints one table naming the device (also written to $OUT/gpu_check.md when $OUT is set).
#    All of it is sized to fit one 10-minute call on an H100; --only reruns some steps.
# Without CUDA it checks that all of this would start (imports, arguments, test collection), says so, exits 0.
# PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PYTHON:-python3}
site=${GPU_CHECK_SITE:-/tmp/site}   # where the kit is installed

if ! "$py" -c "import ray, optuna" 2>/dev/null; then  # (kornia, in the kit too, only bench_augment uses)
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check: ray/optuna are not installed and there is no wheel kit in .whl/;" \
         "build it with ../shared/gpu/make-wheels.sh (from the project root) and bring it along" >&2
    exit 2
  fi
  t0=$(date +%s)
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  export PATH=$site/bin:$PATH
  echo "gpu_check: installed $(ls .whl/*.whl | wc -l) wheels from .whl/ into $site in $(( $(date +%s) - t0 )) s"
fi

# `import visionsweep` must find this tree (the repository root is the package); never top-level datasets/.
ns=$(mktemp -d /tmp/visionsweep-ns.XXXXXX)
ln -s "$root" "$ns/visionsweep"
export PYTHONPATH=$ns${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1               # benchmarks and tests use random init; never wait on the hub
export PYTHONUNBUFFERED=1
trap 'rm -rf "$ns"' EXIT
"$py" - <<'PY'
import pathlib, visionsweep
here = pathlib.Path(visionsweep.__file__).resolve().parent
assert here == pathlib.Path.cwd().resolve(), f"visionsweep imports from {here}, not this tree"
PY
"$py" bench/gpu_check.py "$@"
