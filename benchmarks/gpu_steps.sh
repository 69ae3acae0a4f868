#!/usr/bin/env bash
# Does the CPU recipe's pixel AUROC keep rising with the step budget? configs/cpu-tiles-long.yaml (128-px crops of
# 256-px images, tiles + whole view, maps both; 1,260 steps on the CPU) trained on a lent GPU at 1x, 4x and 8x its
# steps, seed 0, and 8x at seed 1, all at once (the record says they shared the GPU). Same recipe, same renderer
# (torch), only --device cuda and --min-steps change; the 1x row checks that the GPU trains it as the CPU does
# (CPU seed 0: image 91.8, pixel 84.0, AUPRO 73.5).
#
# On an H200 (gpu_h200_steps_session32.json): the four trainings at once took 38 / 150 / 270 / 280 s, scoring
# 2-3 minutes each beside the others; a 470-s limit cut the 8x runs' scoring after their model.pt was written, and
# they were scored with `sslad eval` in a second call (76 s). Step 3 finishes such runs with `--resume` (0.7.4: it scores
# a run whose scoring was cut, in its own folder); the trainings now stop at 380 s (TRAIN_TIMEOUT) to fit one 600-s call.
# Needs .carry/magnetic_tile (carried in two calls: train/, then the rest with the call that runs this script).
# Writes under $OUT (default /tmp/sslad_gpu_steps): summary.json and gpu_steps_files.tgz (gpu.txt, smoke.log,
# steps_<k>x_s<seed>_{metrics.json,epochs.csv,log}).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sslad_gpu_steps}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SSLAD_NO_PROGRESS=1 PYTHONPATH=$PWD/src OMP_NUM_THREADS=4
SSLAD="python3 -m sslad.cli"
DATA=.carry/magnetic_tile
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
[ -d "$DATA/train" ] && [ -d "$DATA/test" ] || { echo "no $DATA (train/ and test/)"; exit 2; }

# 1. Smoke: the recipe end to end on CUDA (crops, tiles, whole view, maps) on a generated set, a few steps. A failure
#    here stops the script before the long runs, with the error in smoke.log.
python3 -c "import sys; from pathlib import Path; sys.path.insert(0, 'tests'); from helpers import make_mvtec; make_mvtec(Path('/tmp/toy'), size=256, n_train=48, n_good=8, n_bad=8)"
timeout 120 $SSLAD train /tmp/toy --config configs/cpu-tiles-long.yaml --device cuda --epochs 1 --min-steps 2 \
  --out /tmp/smoke --overwrite > "$OUT/smoke.log" 2>&1 || { echo "smoke failed"; tail -n 30 "$OUT/smoke.log"; exit 1; }
echo "smoke ok"

# 2. The budgets, at once.
for run in "1 0" "4 0" "8 0" "8 1"; do
  set -- $run
  k=$1; seed=$2; name="steps_${k}x_s${seed}"
  ( start=$SECONDS
    timeout "${TRAIN_TIMEOUT:-380}" $SSLAD train "$DATA" --config configs/cpu-tiles-long.yaml --device cuda \
      --min-steps $((1260 * k)) --seed "$seed" --out "/tmp/$name" --overwrite > "$OUT/$name.log" 2>&1
    echo "rc $?, $((SECONDS - start)) s wall" >> "$OUT/$name.log"
    cp "/tmp/$name/metrics.json" "$OUT/${name}_metrics.json" 2>/dev/null
    cp "/tmp/$name/metrics.csv" "$OUT/${name}_epochs.csv" 2>/dev/null ) &
done
wait

# 3. A run whose training finished but whose scoring was cut: --resume scores it from its model.pt.
for name in steps_8x_s0 steps_8x_s1 steps_4x_s0 steps_1x_s0; do
  if [ ! -f "$OUT/${name}_metrics.json" ] && [ -f "/tmp/$name/model.pt" ]; then
    timeout 200 $SSLAD train "$DATA" --out "/tmp/$name" --resume >> "$OUT/$name.log" 2>&1 \
      && cp "/tmp/$name/metrics.json" "$OUT/${name}_metrics.json" &
  fi
done
wait
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
summary = {}
for m in sorted(out.glob("steps_*_metrics.json")):
    d = json.loads(m.read_text())
    summary[m.name.removesuffix("_metrics.json")] = {k: d.get(k) for k in (
        "image_auroc", "per_type_auroc", "pixel_auroc", "per_type_pixel_auroc", "aupro", "false_positive_rate",
        "steps", "train_time_s", "pretext_accuracy", "synthetic_auroc", "precision", "device")}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
for k, v in summary.items():
    print(k, {x: (round(y, 4) if isinstance(y, float) else y) for x, y in v.items() if not isinstance(y, dict)})
PY
# A lent machine returns at most 8 files: everything but the summary goes back as one archive.
(cd "$OUT" && tar czf /tmp/gpu_steps_files.tgz --exclude=summary.json . && find . -type f ! -name summary.json -delete \
  && mv /tmp/gpu_steps_files.tgz .)
