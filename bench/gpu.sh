#!/usr/bin/env bash
# Every GPU benchmark of the project, in one run (< 8 minutes on one H100), one table at the end.
#
#   bash bench/gpu.sh            # results in $OUT (default bench/out/gpu), one JSON per bench
#   QUICK=1 DEVICE=cpu OUT=/tmp/gpu bash bench/gpu.sh   # a 30-second dry run anywhere (CI runs it)
#
# - attention: flex fwd+bwd vs causal SDPA, bf16, T = 2048..16384, 128-blocks, block densities
# - train: small-model training tokens/s at T = 8192, sparse (flex) vs the dense twin
# - generate: KV-cached decoding vs re-running the model per token, 1k and 2k contexts
#
# Each bench writes JSON with a "summary" list of rows {bench, case, sparse, baseline, unit,
# speedup[, density]}; the final table is all summary rows together (a JSON without
# "summary" contributes its "rows", one line each). A bench joins by being listed in BENCHES
# with the --json contract; a listed script that does not exist is skipped with a note. The
# exit status is the number of benches that failed or timed out.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/out/gpu}"
PY="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$OUT"

# name | time limit (s) | command (the JSON path is appended)
if [[ -n "${QUICK:-}" ]]; then  # smallest sizes: checks that every bench runs, times nothing
  BENCHES=(
    "attention|300|bench/attention.py --device $DEVICE --lengths 1024 --blocks 128 --repeats 1 --json"
    "train|120|bench/train.py --device $DEVICE --lengths 512 --steps 1 --json"
    "generate|120|bench/generate.py --device $DEVICE --contexts 256 --steps 4 --full-steps 1 --json"
  )
else
  BENCHES=(
    "attention|300|bench/attention.py --device $DEVICE --blocks 128 --json"
    "train|120|bench/train.py --device $DEVICE --json"
    "generate|60|bench/generate.py --device $DEVICE --json"
  )
fi

failed=0
for entry in "${BENCHES[@]}"; do
  IFS='|' read -r name limit cmd <<<"$entry"
  limit=$((limit * ${LIMIT_SCALE:-1}))  # LIMIT_SCALE=N: a loaded machine (the CI dry run)
  script="${cmd%% *}"
  if [[ ! -f "$script" ]]; then
    echo "== $name: $script not present, skipped"
    continue
  fi
  echo "== $name (limit ${limit}s)"
  # shellcheck disable=SC2086  # cmd is a word list on purpose
  if ! timeout "$limit" "$PY" $cmd "$OUT/$name.json"; then
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
print("\n== all GPU benchmarks (sparse vs baseline; speedup = baseline time / sparse time)")
print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
for r in cells:
    print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
EOF
exit "$failed"
