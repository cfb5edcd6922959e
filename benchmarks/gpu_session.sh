#!/usr/bin/env bash
# Every GPU figure of the project in one command; JSON and logs go to one folder.
#
#   benchmarks/gpu_session.sh [OUTDIR]      (default: $OUT, else build/gpu-results)
#
# Runs, each under its own time limit (about 4-5 minutes in all on an H100):
#   bench_generation.py  512x512 fp16, batch 8, 20 steps, lambda 10: modes (a)-(d), stage split
#   bench_hyperbatch.py  plain vs hyperbatch DPM++ 2M on the SD1.5-layout UNet (CFG), batch 8/16/64
#   bench_flip.py        LDR-FLIP on CUDA (and the CPU and flip-evaluator for agreement)
# Python packages the GPU image lacks are installed from the wheels in
# $WHEELS (default build/gpu-wheels) when that folder holds any; see
# docs/performance.md for how to fill it. Exit status 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-${OUT:-build/gpu-results}}
WHEELS=${WHEELS:-build/gpu-wheels}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUTDIR"

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/prompt-pinning-site "$WHEELS"/*.whl || { echo "installing $WHEELS failed"; exit 1; }
  export PYTHONPATH=/tmp/prompt-pinning-site${PYTHONPATH:+:$PYTHONPATH}
fi
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi || true
  "$PY" -c "import sys, torch, diffusers; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__)"
} 2>&1 | tee "$OUTDIR/environment.txt"
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "no CUDA GPU here"; exit 1; }

status=0
step() {  # step NAME LIMIT_SECONDS COMMAND...: run it, log to OUTDIR/NAME.log
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit} s)"
  timeout "$limit" "$@" 2>&1 | tee "$OUTDIR/$name.log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then echo "== $name failed (exit $rc)"; status=1; fi
}

step bench_generation 270 "$PY" benchmarks/bench_generation.py --json "$OUTDIR/bench_generation.json"
step bench_hyperbatch 150 "$PY" benchmarks/bench_hyperbatch.py --device cuda \
  --model diffusers_renderer:hyperbatch_denoiser --json "$OUTDIR/bench_hyperbatch_unet.json"
step bench_flip 90 "$PY" benchmarks/bench_flip.py --threads 16 --fe-pairs 16
exit $status
