#!/usr/bin/env bash
# What only a GPU can measure, in one short run (about 10 minutes on one H100):
#   1. attack throughput against a bare forward + backward pass, at 100 and 1,000 points;
#   2. training images/s of Plain, CLP, LSQ and 50% AT (LeNet, ResNet-20 v2, ResNet-50 v2);
#   3. lock step (a point's targets and restarts in one batch, the default on CUDA) against
#      one run after another, for `auto` and `aa-standard` on the zoo's LeNets;
#   4. `auto` against `aa-standard` (robust accuracy, gradients, forward passes, wall time)
#      on the held-out models of the population, and `aa-rand` on its randomised one, on CUDA;
#   5. a one-process NCCL torchrun training and evaluation (the multi-GPU path).
# Everything goes to $OUT (default gpu-results/DATE/); commit it under docs/results/gpu/ with
# the date, and say the card. Usage: bash benchmarks/gpu.sh [POINTS]   (POINTS default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
points="${1:-200}"
out="${OUT:-gpu-results/$(date +%Y-%m-%d)}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)" | tee "$out/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$out/device.txt" || true

python benchmarks/attack_throughput.py --device cuda --clock wall --points 100 1000 \
    | tee "$out/attack_throughput.txt"
python benchmarks/train_throughput.py --device cuda --seconds 5 | tee "$out/train_throughput.txt"
python benchmarks/lockstep.py --device cuda --points "$points" --threads 0 | tee "$out/lockstep.md"

for draw in 2 3 5; do  # measured fresh on the CPU: the current ladder (2, 3), EOT rules (5)
    python benchmarks/population.py evaluate --side held-out --draw "$draw" \
        --points "$points" --device cuda | tee -a "$out/population.txt"
    python benchmarks/population.py table --side "held-out-draw$draw-cuda" \
        > "$out/population-held-out-draw$draw-cuda.md"
    cp -r "benchmarks/population/results/held-out-draw$draw-cuda" "$out/"
done

torchrun --nproc_per_node=1 -m lpbench train --preset clp --dataset mnist-digits --epochs 1 \
    --train-points 2000 --device cuda --out "$out/torchrun-clp" --force --no-progress \
    | tee "$out/torchrun.txt"
torchrun --nproc_per_node=1 -m lpbench evaluate "$out/torchrun-clp" --preset baseline \
    --points 200 --device cuda --no-progress --out "$out/torchrun-clp/results.json" \
    | tee -a "$out/torchrun.txt"
echo "results in $out"
