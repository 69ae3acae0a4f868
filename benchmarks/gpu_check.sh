#!/usr/bin/env bash
# The one prepared GPU check: run it on a machine with a CUDA GPU (e.g. a lent H200), in the
# repository root. It needs nothing from the internet and fits one 10-minute call (about 8 minutes on an H200:
# the trainings took 257 s side by side plus a minute of scoring each, which a 300-s limit cut on the second lease):
#
#   Preparation, on the CPU machine (once): the DALI wheel (py3-none: every Python) and its small pure or
#   cp312 dependencies; nvimgcodec and nvcomp are only dlopen()ed by DALI's decoders, which sslad does not use.
#     mkdir -p .git/info && printf '/.whl/\n/.carry/\n' >> .git/info/exclude
#     pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#         nvidia-dali-cuda120==2.4.0 astunparse==1.6.3 gast==0.7.0 optree==0.20.0 nvtx==0.2.17 makefun==1.16.0 \
#         libcst==1.9.0
#     (cd .whl && for w in nvidia_dali*.whl; do split -b 60M "$w" "$w.part-" && rm "$w"; done)
#   Send the wheel parts in successive calls (each under the 64 MiB carry limit, the small wheels with the last)
#   while the machine stays warm, then run this script in one call; it joins the parts in /tmp first.
#   Real data is optional (.carry/magnetic_tile, 80 MB, does not fit one call): without it step 4 trains on a
#   generated texture set, which measures the GPU training path and its time, not detection quality.
#
# Writes under $OUT (default /tmp/sslad_gpu_check): gpu.txt, dali_gpu_diff.json, gpu_tests.log, bench_gpu.json,
# bench_gpu_training.json, train_{dali,torch}_metrics.json and summary.json: 8 files, what a lent machine returns.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sslad_gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SSLAD_NO_PROGRESS=1

# 1. Wheels: join split parts in /tmp (the parts stay as they are: a dry run where they are kept loses nothing),
#    install into a private site dir (the image has torch).
WHL=/tmp/sslad_whl
rm -rf "$WHL" && mkdir -p "$WHL"
for first in .whl/*.part-aa; do
  [ -e "$first" ] || continue
  whl=${first%.part-aa}; cat "$whl".part-* > "$WHL/$(basename "$whl")" || exit 1
done
cp .whl/*.whl "$WHL"/ 2>/dev/null
if compgen -G "$WHL/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src
SSLAD="python3 -m sslad.cli"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, nvidia.dali as d; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'dali', d.__version__)" \
  | tee -a "$OUT/gpu.txt"

# 2. Where DALI's GPU graph differs from the torch reference (per size up to 512 px, family, class, row
#    variant), then the gpu-marked tests: DALI GPU graph and torch CUDA vs the CPU reference on the same plans.
timeout 90 python3 benchmarks/dali_gpu_diff.py --json "$OUT/dali_gpu_diff.json" 2>&1 | tail -n 25
python3 -m pytest -q -m gpu -rs -p no:cacheprovider tests/test_dali.py 2>&1 | tee "$OUT/gpu_tests.log"

# 3. Regeneration throughput at 128/256/512 px with large batches, then training throughput fed by each
#    backend beside data already resident on the GPU. PIL on 16 workers was measured on the first H200 run
#    (gpu_h200_check_session29.json); BACKENDS_BENCH=dali,torch,pil adds it again (about a minute more).
timeout 120 $SSLAD bench --backends "${BACKENDS_BENCH:-dali,torch}" --device cuda --image-size 128,256,512 \
  --batch-size 2048 --images 2048 --repeats 3 --warmup 2 --workers 16 --json "$OUT/bench_gpu.json" 2>&1 | tail -n 20
timeout 120 $SSLAD bench --backends "${BACKENDS_BENCH:-dali,torch}" --device cuda --image-size 256 --batch-size 96 \
  --images 1024 --repeats 1 --warmup 5 --workers 16 --training --train-steps 50 \
  --json "$OUT/bench_gpu_training.json" 2>&1 | tail -n 12

# 4. The GPU recipe (configs/gpu.yaml: 256 px, U-Net decoder, blobs and cracks, maps, 100 epochs) per backend,
#    same seed, both at once (one H200 is far from busy with one ResNet-18 at batch 96; the record says they
#    shared it). On magnetic_tile when it was carried; else on a generated texture set (tests/helpers.make_mvtec,
#    384 training images at 256 px), 10 epochs: the end-to-end GPU path and its time per backend.
DATA=.carry/magnetic_tile
EPOCHS=${EPOCHS:-100}
if [ ! -d "$DATA" ]; then
  DATA=/tmp/toy_textures
  EPOCHS=10
  python3 -c "import sys; from pathlib import Path; sys.path.insert(0, 'tests'); from helpers import make_mvtec; make_mvtec(Path('$DATA'), size=256, n_train=384, n_good=32, n_bad=32)"
fi
for b in ${BACKENDS:-dali torch}; do  # run folders stay in /tmp (model.pt is large); their metrics.json come back
  ( start=$SECONDS
    timeout "${TRAIN_TIMEOUT:-420}" $SSLAD train "$DATA" --config configs/gpu.yaml --backend "$b" --epochs "$EPOCHS" \
      --seed 0 --out "/tmp/train_$b" --overwrite > "/tmp/train_$b.log" 2>&1
    echo "train --backend $b: rc $?, $((SECONDS - start)) s wall" >> "/tmp/train_$b.log"
    cp "/tmp/train_$b/metrics.json" "$OUT/train_${b}_metrics.json" 2>/dev/null ) &
done
wait
for b in ${BACKENDS:-dali torch}; do echo "== $b"; tail -n 8 "/tmp/train_$b.log"; done
python3 - "$OUT" "$DATA" "$EPOCHS" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
summary = {"data": sys.argv[2], "epochs": int(sys.argv[3]), "note": "the backends trained at once, sharing the GPU"}
for b in ("dali", "torch"):
    m = out / f"train_{b}_metrics.json"
    if m.is_file():
        d = json.loads(m.read_text())
        summary[b] = {k: d.get(k) for k in ("image_auroc", "per_type_auroc", "pixel_auroc", "aupro", "recall",
                                            "false_positive_rate", "train_time_s", "images_per_s", "regen_time_s",
                                            "backend", "steps", "discrepancy_pixel_auroc")}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
PY
