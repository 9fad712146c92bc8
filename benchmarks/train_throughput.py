"""Training images/s of Plain, CLP, LSQ and 50% AT per model, and each one's ratio to Plain.

One training step as ``lpbench train`` takes it (input noise, adversarial examples with the
recipe's PGD, the objective, backward, Adam) on random inputs, for LeNet (MNIST recipes),
ResNet-20 v2 (CIFAR-10) and ResNet-50 v2 (Tiny ImageNet, least-likely targets), on small
batches. Runs on CUDA when available. Run: python benchmarks/train_throughput.py
"""

from __future__ import annotations

import argparse
import time

import torch

from lpbench.data import get_dataset_info
from lpbench.defenses import add_input_noise, least_likely_targets, objective_terms
from lpbench.models import build_model
from lpbench.runtime import resolve_device
from lpbench.training import get_recipe
from lpbench.training.adversarial import craft_adversarial, crafting_mode
from lpbench.training.config import TrainConfig

MODELS = (
    ("LeNet", "mnist", 64),
    ("ResNet-20 v2", "cifar10", 32),
    ("ResNet-50 v2", "tiny-imagenet", 16),
)
ROWS = (("Plain", "plain"), ("CLP", "clp"), ("LSQ", "lsq"), ("50% AT", "50at"))


def _step_fn(config: TrainConfig, batch: int, device: torch.device):
    info = get_dataset_info(config.dataset)
    torch.manual_seed(0)
    model = build_model(config.model, info.input_shape, info.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, eps=config.adam_eps)
    x = torch.rand(batch, *info.input_shape, device=device)
    y = torch.randint(0, info.num_classes, (batch,), device=device)
    objective = config.objective

    def step() -> None:
        noisy = add_input_noise(x, objective.noise_std, clip=objective.noise_clip)
        x_adv = None
        if objective.needs_adversarial:
            with crafting_mode(model, config.adv_model_mode):
                target = least_likely_targets(model, noisy) if config.adv_target == "ll" else None
                index = torch.arange(batch, device=device)
                x_adv = craft_adversarial(model, noisy, y, index, target, config, info.eps, 0)
        model.train()
        terms = objective_terms(model, noisy, y, objective, x_adv)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()

    return step


def _images_per_s(step, batch: int, seconds: float, device: torch.device) -> float:
    step()  # warm-up
    done, start = 0, time.perf_counter()
    while True:
        step()
        done += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and done >= 2:
            return done * batch / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
        "images/s of one training step (ratio to Plain)"
    )
    print(f"{'model':<14}{'batch':>6}" + "".join(f"{label:>20}" for label, _ in ROWS))
    for title, dataset, batch in MODELS:
        rates = []
        for _, row in ROWS:
            name = f"{dataset}/{row}" if dataset != "tiny-imagenet" or row != "50at" else None
            config = get_recipe(name or "tiny-imagenet/50at-ll").config
            rates.append(
                _images_per_s(_step_fn(config, batch, device), batch, args.seconds, device)
            )
        cells = "".join(f"{r:>11.1f} ({r / rates[0]:.3f}x)" for r in rates)
        print(f"{title:<14}{batch:>6}{cells}")
    print(
        "50% AT crafts its examples with the recipe's PGD: 40 iterations on LeNet, 10 on "
        "the ResNets (least-likely target on ResNet-50 v2)."
    )


if __name__ == "__main__":
    main()
