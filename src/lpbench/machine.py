"""What machine ran an evaluation: facts that can move a verdict near the decision boundary.

The same seeds give the same attacks anywhere, but kernels differ by CPU instruction set
(torch's CPU capability: DEFAULT, AVX2, AVX512, ...) and by GPU, so floating-point sums
round differently and a point right at the boundary can flip. The manifest records these
facts under ``"machine"`` and reports say when results compared side by side differ in them.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, else the platform's), never failing."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_facts(device: str | torch.device) -> dict[str, Any]:
    """CPU model and torch CPU capability, GPU name and capability when ``device`` is CUDA."""
    device = torch.device(device)
    facts: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "gpu": None,
        "gpu_capability": None,
        "cuda": None,
    }
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        facts.update(
            gpu=torch.cuda.get_device_name(index),
            gpu_capability=f"{major}.{minor}",
            cuda=torch.version.cuda,
        )
    return facts


def describe_machine(facts: dict[str, Any] | None) -> str:
    """A label such as ``AMD EPYC (AVX512)``, plus the GPU when one ran; else ``unknown``.

    Reports compare these labels: results with different ones came from different machines.
    """
    if not facts:
        return "unknown"
    text = f"{facts.get('cpu') or 'unknown CPU'} ({facts.get('cpu_capability') or 'unknown'})"
    if facts.get("gpu"):
        text += f" + {facts['gpu']}"
        if facts.get("gpu_capability"):
            text += f" (sm {facts['gpu_capability']})"
    return text
