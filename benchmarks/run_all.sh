#!/usr/bin/env bash
# The audit, explainer and faithfulness benchmarks in one go, on whatever JAX finds (CPU, one
# GPU or TPU), each comparing with its peer in the same run (eager PyTorch, Captum).
#
#   benchmarks/run_all.sh [OUT]        # default OUT: benchmarks/run_all/<jax backend>
#
# Writes OUT/RESULTS.md (JW's audits vs eager PyTorch), OUT/EXPLAIN_RESULTS.md (explainers vs
# Captum) and OUT/FAITHFULNESS_RESULTS.md (ERASER and flips vs eager PyTorch), each naming the
# machine and its devices, and OUT/seconds.txt with each benchmark's wall time. The default
# model (SST, BiLSTM, tanh) is trained first if its run folder lacks it (make audit's run).
#
# Sized for about 8 minutes on one accelerator after training: the JAX side covers whole
# batches of SST's test set; the eager side runs on PyTorch's CPU build (the one this project
# installs), on a sample, and its per-instance time is scaled. BENCH_QUICK=1 runs tiny sizes,
# to check the script end to end. Environment: PY (python), ATTN_AUDIT_DATA, WORKDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${ATTN_AUDIT_DATA:-../shared/data}
WORKDIR=${WORKDIR:-runs/sst_lstm_tanh}
BACKEND=$("$PY" -c "import jax; print(jax.default_backend())")
OUT=${1:-benchmarks/run_all/$BACKEND}
mkdir -p "$OUT"

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  AUDIT=(--limit=64 --eager_limit=64)
  EXPLAIN=(--limit=32 --captum_limit=4 --agreement_instances=2 --noexplain_process)
  FAITH=(--limit=32 --torch_limit=4 --agreement_instances=2)
else
  AUDIT=(--limit=320 --eager_limit=320)
  EXPLAIN=(--limit=256 --captum_limit=32 --noexplain_process)
  FAITH=(--limit=256 --torch_limit=32)
fi

"$PY" -m experiments.train --dataset=sst --encoder=lstm --attention=tanh \
  --data_dir="$DATA" --workdir="$WORKDIR"

: > "$OUT/seconds.txt"
run() {  # run NAME COMMAND...: times one benchmark into seconds.txt
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "$name $((SECONDS - start)) s" | tee -a "$OUT/seconds.txt"
}
run audit_vs_torch "$PY" -m benchmarks.audit_vs_torch --workdir="$WORKDIR" --data_dir="$DATA" \
  --out="$OUT" --scaling=false "${AUDIT[@]}"
run explain_vs_captum "$PY" -m benchmarks.explain_vs_captum --workdir="$WORKDIR" \
  --data_dir="$DATA" --out="$OUT" "${EXPLAIN[@]}"
run faithfulness_vs_torch "$PY" -m benchmarks.faithfulness_vs_torch --workdir="$WORKDIR" \
  --data_dir="$DATA" --out="$OUT" "${FAITH[@]}"
echo "Wrote $OUT: RESULTS.md, EXPLAIN_RESULTS.md, FAITHFULNESS_RESULTS.md, seconds.txt"
