#!/usr/bin/env bash
# The GPU acceptance script: every check a GPU run must pass, in one run (< 10 minutes on one
# H100/H200), one table at the end; the exit status is the number of checks that failed.
#
#   bash bench/gpu.sh            # results in $OUT (default bench/out/gpu), one JSON per bench
#   QUICK=1 DEVICE=cpu OUT=/tmp/gpu bash bench/gpu.sh   # a dry run anywhere (the suite runs it)
#
# - attention: flex fwd+bwd vs causal SDPA, bf16, T = 8192 and 16384, 128-blocks, block
#   densities and the mask plan's build time (mask_s, on the CPU as the loader builds it)
# - train: 20 bf16 compiled training steps of `small` at T = 8192, sparse (flex) and the dense
#   twin, tokens/s; the mask plan's CPU build time and ATen op count (B=8, T=8192) beside the
#   step time
# - resume: a run SIGKILLed after its first checkpoint and resumed repeats the straight run's
#   losses; `torchrun --nproc_per_node 1` trains on NCCL
# - generate-b1, generate-b8: cached decode == full forward in bf16 (exit 1 if not), then
#   KV-cached, compiled (CUDA graphs) decoding tokens/s vs re-running the model, batch 1 and 8
#
# Targets (issue 12): train sparse >= 1.5x the dense twin and >= 500,000 tok/s (50x the
# seed's 10,000); decode >= 1,000 tok/s at batch 1.
#
# Each bench writes JSON with a "summary" list of rows {bench, case, sparse, baseline, unit,
# speedup[, density]}; the final table is all summary rows together (a JSON without
# "summary" contributes its "rows", one line each). A bench joins by being listed in BENCHES
# with the --json contract (a module of bench/, run as `python -m`); a listed module whose
# file does not exist is skipped with a note.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/out/gpu}"
PY="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$OUT"

# name | time limit (s) | module and arguments (run as `$PY -m`; the JSON path is appended)
if [[ -n "${QUICK:-}" ]]; then  # smallest sizes: checks that every bench runs, times nothing
  BENCHES=(
    "attention|300|bench.attention --device $DEVICE --lengths 1024 --blocks 128 --repeats 1 --json"
    "train|180|bench.train --device $DEVICE --lengths 512 --steps 1 --mask-shape 2 512 --json"
    "resume|240|bench.resume --device $DEVICE --steps 4 --json"
    "generate|120|bench.generate --device $DEVICE --contexts 256 --steps 4 --full-steps 1 --check --json"
  )
else
  BENCHES=(
    "attention|150|bench.attention --device $DEVICE --lengths 8192 16384 --blocks 128 --json"
    "train|180|bench.train --device $DEVICE --lengths 8192 --steps 20 --compile --json"
    "resume|120|bench.resume --device $DEVICE --steps 8 --json"
    "generate-b1|60|bench.generate --device $DEVICE --dtype bfloat16 --batch 1 --compile --check --json"
    "generate-b8|60|bench.generate --device $DEVICE --dtype bfloat16 --batch 8 --compile --check --json"
  )
fi

failed=0
for entry in "${BENCHES[@]}"; do
  IFS='|' read -r name limit cmd <<<"$entry"
  limit=$((limit * ${LIMIT_SCALE:-1}))  # LIMIT_SCALE=N: a loaded machine (the CI dry run)
  module="${cmd%% *}"
  script="${module//.//}.py"
  if [[ ! -f "$script" ]]; then
    echo "== $name: $script not present, skipped"
    continue
  fi
  echo "== $name (limit ${limit}s)"
  # shellcheck disable=SC2086  # cmd is a word list on purpose
  if ! timeout "$limit" "$PY" -m $cmd "$OUT/$name.json"; then
    echo "== $name: failed or timed out"
    failed=$((failed + 1))
  fi
done

"$PY" - "$OUT" <<'EOF'
"""Print every bench's summary rows as one table."""
import json
import sys
from pathlib import Path

rows = []
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    data = json.loads(path.read_text())
    if "summary" in data:
        rows += data["summary"]
    else:  # a bench without the summary contract: one line per row, its fields as the case
        rows += [{"bench": path.stem, "case": ", ".join(f"{k}={v}" for k, v in r.items())}
                 for r in data.get("rows", [])]
cols = ["bench", "case", "sparse", "baseline", "unit", "speedup", "density"]
fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
print("\n== all GPU benchmarks (sparse vs baseline; speedup = baseline time / sparse time;"
      " check rows: speedup = limit / error, >= 1 passes)")
print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
for r in cells:
    print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
EOF
exit "$failed"
