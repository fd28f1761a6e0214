#!/usr/bin/env bash
# The GPU path, checked and measured on a machine with a CUDA GPU, in at most 8 minutes, offline:
#   1. the cuda-marked tests (fp32 on CUDA against CPU eager, bf16/fp16 deviation, buckets warmed, pinned
#      batches, AMP training), at most 140 s;
#   2. benchmarks.gpu_bench (model-only img/s by batch and precision, /predict end to end at 64 clients,
#      decode img/s per core, chexnet train img/s at 224 px with AMP), at most 300 s; it rewrites its results
#      file after every section, so a run cut short keeps what it measured.
# Writes benchmarks/results/gpu-<date>.json (and the tests' output beside it); OUT=folder to write elsewhere.
#
#   bash benchmarks/gpu_check.sh            # needs a CUDA device
#   bash benchmarks/gpu_check.sh --quick    # a dry run on any machine, tiny counts: not a measurement
#
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python3); it needs this project's
# dependencies (pyproject.toml, with the dev and train extras), not the network.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
if [[ "${1:-}" == "--quick" ]]; then
  quick=(--quick)
elif [[ $# -gt 0 ]]; then
  echo "usage: bash benchmarks/gpu_check.sh [--quick]" >&2
  exit 2
fi
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ ${#quick[@]} -eq 0 ]] && ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA device visible to $PYTHON; run with --quick for a dry run" >&2
  exit 1
fi

# Only the files that hold cuda-marked tests are collected: a GPU machine may lack packages that other test
# modules import at collection (openvino, imagecodecs), and one collection error would stop the whole run.
mapfile -t cuda_files < <(grep -rl --include='test_*.py' 'pytest.mark.cuda' tests | sort)
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
tests_log="$OUT/gpu-tests-$stamp.txt"
tests_rc=0
timeout -k 15 140 "$PYTHON" -m pytest -q -rs -p no:cacheprovider -m cuda "${cuda_files[@]}" 2>&1 | tee "$tests_log" \
  || tests_rc=$?

bench_rc=0
timeout -k 15 300 "$PYTHON" -m benchmarks.gpu_bench "${quick[@]}" --out "$OUT" \
  --tests-log "$tests_log" --tests-exit-code "$tests_rc" || bench_rc=$?

# Batch scoring on the GPU (docs/scale-scoring.md): files/s for 1 process and 2 shards, decode vs model split;
# Ray only where chexnet[ray] is installed. Recorded, never fatal.
scoring_files=256; [[ ${#quick[@]} -gt 0 ]] && scoring_files=16
timeout -k 15 120 "$PYTHON" -m benchmarks.batch_scoring --device cuda --files "$scoring_files" --out "$OUT" \
  || echo "gpu_check: batch scoring benchmark failed (not counted)"

echo "gpu_check: cuda tests exit $tests_rc, benchmark exit $bench_rc; results in $OUT"
if [[ $tests_rc -ne 0 || $bench_rc -ne 0 ]]; then
  exit 1
fi
