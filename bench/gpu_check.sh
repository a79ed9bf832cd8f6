#!/usr/bin/env bash
# The trainer's GPU speed check, one script, about 6-8 minutes on an H100:
#   1. SASRec, batch 64, one whole epoch with compile=reduce-overhead (CUDA graphs), then a full
#      evaluation of all 200K users x 96,283 items at fp32 (and tf32/bf16 for comparison)
#   2. SASRec, batch 64, eager (1000 timed steps, projected to the epoch), full fp32 evaluation
#   3. MF, batch 512, d 4096 (the paper's), eager (300 timed steps, projected), full evaluation
#   4. PixelNet: SASRec + ViT-B-32, last 2 blocks tuned, bf16, plain vs optimised path
#      (bench/pixelnet_epoch.py: items encoded per second, projected epoch)
# on the Pixel200K-shaped synthetic release (bench/train_epoch.py; ~3.56M training rows).
# Installs nothing from the network; needs a CUDA build of torch in $PY (default .venv/bin/python
# when it exists, else python3: the lent GPU machines' python3 holds torch, numpy, pyarrow, yaml,
# tqdm). open_clip (step 4) travels as wheels: run `bash bench/gpu_wheels.sh` here first (it fills
# .whl/, git-ignored) and carry .whl; this script installs them into /tmp/site.
#
#   bash bench/gpu_check.sh          # on the GPU machine; results also under $OUT/gpu_check
#   bash bench/gpu_check.sh --tiny   # the same steps on CPU at toy size (checks this script, <1 min)
#
# Each step runs under `timeout`, limited also by what is left of a total budget (BUDGET_S, 500 s
# by default, 140 s with --tiny), and a failing step does not stop the next (no set -e). Step
# logs: <step>.log.
set -u
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
RESULTS=${OUT:-/tmp}/gpu_check
mkdir -p "$RESULTS"
START=$(date +%s)

if [ "${1:-}" = "--tiny" ]; then
  BUDGET_S=${BUDGET_S:-140}
  PIXELNET="--tiny --device cpu"
  COMMON="--device cpu --users 3000 --items 1500 --sasrec-dim 32 --mf-dim 32 --threads 1 --release-dir $RESULTS/data"
  COMPILE="--compile reduce-overhead --compile-backend aot_eager"
  SASREC_EAGER_STEPS=20; MF_STEPS=20; WORKERS=0; LIMIT_SCALE=4
else
  BUDGET_S=${BUDGET_S:-500}
  PIXELNET="--device cuda"
  COMMON="--device cuda --release-dir $RESULTS/data"
  COMPILE="--compile reduce-overhead"
  SASREC_EAGER_STEPS=1000; MF_STEPS=300; WORKERS=4; LIMIT_SCALE=1
fi

# step NAME LIMIT_S CMD...: run under min(LIMIT, budget left) seconds; keep the log and the
# bench's one-line JSON results
step() {
  local name=$1 limit=$(( $2 / LIMIT_SCALE )); shift 2
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 5 ]; then echo "== $name: skipped, budget spent"; return; fi
  echo "== $name (timeout ${limit}s)"
  local t0=$(date +%s)
  timeout -k 5 "$limit" "$@" > "$RESULTS/$name.log" 2>&1
  local rc=$?
  echo "   rc=$rc in $(( $(date +%s) - t0 ))s$([ $rc -eq 124 ] && echo ' (TIMED OUT)')"
  grep '^{"' "$RESULTS/$name.log" > "$RESULTS/$name.json"
  [ $rc -ne 0 ] && tail -n 5 "$RESULTS/$name.log" | sed 's/^/   | /'
}

step env 60 "$PY" -c "
import torch, sys
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
if torch.cuda.is_available(): print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).total_memory // 2**30, 'GiB')
"
cat "$RESULTS/env.log"
if [ "${1:-}" != "--tiny" ] && ! grep -q "available True" "$RESULTS/env.log"; then
  echo "no CUDA device visible to $PY: nothing to measure"; exit 1
fi

# the synthetic release, generated once (the benches reuse it)
step release 120 "$PY" bench/train_epoch.py $COMMON --models sasrec --steps -1 --eval-batches 1

step sasrec_compiled 220 "$PY" bench/train_epoch.py $COMMON $COMPILE --bf16 --models sasrec \
  --steps 0 --warmup 20 --eval-batches 0 --eval-precision fp32 tf32 bf16 --num-workers $WORKERS
step sasrec_eager 90 "$PY" bench/train_epoch.py $COMMON --bf16 --models sasrec \
  --steps $SASREC_EAGER_STEPS --warmup 20 --eval-batches 0 --num-workers $WORKERS
step mf_eager 100 "$PY" bench/train_epoch.py $COMMON --bf16 --models mf \
  --steps $MF_STEPS --warmup 10 --eval-batches 0 --num-workers $WORKERS

step pixelnet 150 "$PY" bench/pixelnet_epoch.py $PIXELNET
tail -n 25 "$RESULTS/pixelnet.log"

echo "== summary (total $(( $(date +%s) - START ))s)"
"$PY" - "$RESULTS" <<'EOF'
import json, sys
from pathlib import Path
results = Path(sys.argv[1])
for name in ("sasrec_compiled", "sasrec_eager", "mf_eager"):
    path = results / f"{name}.json"
    lines = path.read_text().splitlines() if path.exists() else []
    if not lines:
        print(f"{name}: no result (see {results / (name + '.log')})")
        continue
    entry = next(iter(json.loads(lines[-1]).values()))
    train = entry.get("train", {})
    print(f"{name}: d {entry['embedding_size']}, batch {train.get('batch_size')}, "
          f"epoch {train.get('epoch_s')} s ({'projected from ' + str(train.get('steps_timed')) + ' steps' if train.get('projected') else 'whole epoch'}; "
          f"{train.get('ms_per_step')} ms/step, warm-up/compile {train.get('warmup_s')} s), "
          f"peak GPU {entry.get('peak_gpu_gib')} GiB")
    for ev in entry.get("eval", []):
        print(f"   full evaluation {ev['precision']}: {ev['eval_s']} s over {ev['users_timed']} users"
              f"{' (projected)' if ev['projected'] else ''}; {ev['metrics_of_timed_users']}")
EOF
