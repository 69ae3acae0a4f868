#!/usr/bin/env bash
# The one prepared GPU check: run it on a machine with a CUDA GPU (e.g. a lent H200), in the
# repository root. It needs nothing from the internet:
#
#   Preparation, on the CPU machine (once):
#     echo /.whl/ >> .git/info/exclude; echo /.carry/ >> .git/info/exclude
#     pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#         nvidia-dali-cuda120==2.4.0 nvidia-nvimgcodec-cu12 nvidia-libnvcomp-cu12 tqdm pyyaml
#     (cd .whl && for w in nvidia_dali*.whl; do split -b 60M "$w" "$w.part-" && rm "$w"; done)
#     mkdir -p .carry && cp -r ../shared/data/magnetic_tile .carry/   # the data does not travel by itself
#   Send the wheel parts in successive calls (each under the 64 MiB carry limit) while the
#   machine stays warm, then run this script in one call; it reassembles the parts first.
#
# Writes under $OUT (default /tmp/sslad_gpu_check): gpu_tests.log, bench_gpu.json/.png,
# bench_gpu_training.json, train_<backend>/metrics.json and summary.json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sslad_gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SSLAD_NO_PROGRESS=1

# 1. Wheels: reassemble split parts, install into a private site dir (the image has torch).
if compgen -G ".whl/*.part-aa" > /dev/null; then
  for first in .whl/*.part-aa; do whl=${first%.part-aa}; cat "$whl".part-* > "$whl" && rm -f "$whl".part-*; done
fi
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src
SSLAD="python3 -m sslad.cli"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, nvidia.dali as d; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'dali', d.__version__)" \
  | tee -a "$OUT/gpu.txt"

# 2. The gpu-marked tests: DALI GPU graph and torch CUDA vs the CPU reference on the same plans.
python3 -m pytest -q -m gpu -rs tests/ 2>&1 | tee "$OUT/gpu_tests.log"

# 3. Regeneration throughput at 128/256/512 px with large batches, then training throughput.
timeout 240 $SSLAD bench --backends dali,torch,pil --device cuda --image-size 128,256,512 --batch-size 3072 \
  --images 2048 --repeats 5 --warmup 2 --workers 16 --json "$OUT/bench_gpu.json" --plot "$OUT/bench_gpu.png" \
  2>&1 | tail -n 20
timeout 180 $SSLAD bench --backends dali,torch,pil --device cuda --image-size 256 --batch-size 96 --images 1024 \
  --repeats 1 --warmup 5 --workers 16 --training --train-steps 100 --json "$OUT/bench_gpu_training.json" \
  2>&1 | tail -n 12

# 4. The GPU recipe (configs/gpu.yaml: 256 px, U-Net decoder, blobs and cracks, maps) per backend, same seed,
#    then the downstream transfer of the DALI run into a MobileNetV3-Small student.
DATA=.carry/magnetic_tile
[ -d "$DATA" ] || DATA=../shared/data/magnetic_tile
for b in dali torch; do
  /usr/bin/time -f "%e s wall" timeout 200 $SSLAD train "$DATA" --config configs/gpu.yaml --backend "$b" \
    --epochs 20 --seed 0 --out "$OUT/train_$b" --overwrite 2>&1 | tail -n 12
done
timeout 120 $SSLAD distill "$OUT/train_dali" --arch mobilenet_v3_small --out "$OUT/train_student" --device cuda \
  --overwrite 2>&1 | tail -n 8
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
summary = {}
for b in ("dali", "torch", "student"):
    m = out / f"train_{b}" / "metrics.json"
    if m.is_file():
        d = json.loads(m.read_text())
        summary[b] = {k: d.get(k) for k in ("image_auroc", "pixel_auroc", "aupro", "false_positive_rate",
                                            "train_time_s", "images_per_s", "regen_time_s", "backend",
                                            "discrepancy_pixel_auroc")}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
PY
