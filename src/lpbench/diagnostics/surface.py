"""Loss of one point on the plane spanned by its gradient sign and a random sign vector."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from lpbench.io import atomic_write
from lpbench.runtime import evaluation_mode


def save_figure(fig: Figure, path: str | Path, *, pdf: bool = False) -> list[Path]:
    """Write ``fig`` as ``path`` with suffix .png (and .pdf when asked), atomically.

    Figures are built on ``matplotlib.figure.Figure`` directly, never through pyplot, so
    they render headless (Agg) whatever backend the caller's process uses, and nothing
    stays registered once the figure goes out of scope.
    """
    path = Path(path)
    written = []
    for fmt in ("png", "pdf") if pdf else ("png",):
        target = path.with_suffix(f".{fmt}")

        def write(tmp: Path, fmt: str = fmt) -> None:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")

        atomic_write(target, write)
        written.append(target)
    return written


def write_npz(path: str | Path, fields: dict[str, Any]) -> Path:
    """Write ``fields`` (arrays or scalars) to a compressed ``.npz`` file, atomically."""
    # Any values: numpy's stubs would match a dict of arrays against allow_pickle too.
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in fields.items()}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle, so numpy adds no ".npz" to the name
            np.savez_compressed(handle, **arrays)

    return atomic_write(path, write)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file written by :func:`write_npz`, read into memory."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@dataclass
class SurfaceData:
    """Cross-entropy of one point on ``clip(x + a*d1 + b*d2, 0, 1)``.

    ``loss[i, j]`` is the loss at ``a = alphas[i]``, ``b = betas[j]``; ``d1`` is the sign
    of the input gradient at ``x``, ``d2`` a seeded random sign vector (both flattened).
    """

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    clean_loss: float
    label: int
    eps: float
    d1: np.ndarray
    d2: np.ndarray
    index: int = -1
    seed: int = 0

    def save_npz(self, path: str | Path) -> Path:
        """Write every field to a compressed ``.npz`` file, atomically."""
        return write_npz(path, vars(self))

    @classmethod
    def load_npz(cls, path: str | Path) -> SurfaceData:
        """Read a file written by :meth:`save_npz`."""
        arrays = read_npz(path)
        scalars = {"clean_loss": float, "label": int, "eps": float, "index": int, "seed": int}
        values: dict[str, Any] = {
            k: scalars[k](v) if k in scalars else v for k, v in arrays.items()
        }
        return cls(**values)


def loss_surface(
    model: nn.Module,
    x: torch.Tensor,
    y: int | torch.Tensor,
    eps: float,
    *,
    resolution: int = 51,
    seed: int = 0,
    batch_size: int = 1024,
    index: int = -1,
) -> SurfaceData:
    """Cross-entropy of the point ``(x, y)`` on a ``resolution`` x ``resolution`` grid.

    ``x`` is one input, (C, H, W) or (1, C, H, W). The plane is
    ``x + a*sign(grad_x CE) + b*d2`` with ``a, b`` in ``[-eps, eps]`` and ``d2`` a random
    sign vector drawn from ``seed``; inputs are clipped to [0, 1]. Grid points are
    evaluated ``batch_size`` at a time, on the device of the model's weights, with the
    model in eval mode (its mode is restored afterwards). An odd ``resolution`` puts
    ``(0, 0)`` (the point itself) exactly on the grid. ``index`` is the point's data-set
    index, kept for the record.
    """
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    x = x.detach().to(device)
    if x.dim() < 4:  # one input without its batch dimension
        x = x.unsqueeze(0)
    if x.shape[0] != 1:
        raise ValueError(f"loss_surface takes one point, got a batch of {x.shape[0]}")
    label = int(y)
    target = torch.tensor([label], device=device)
    with evaluation_mode(model, device):
        xg = x.clone().requires_grad_(True)
        clean = F.cross_entropy(model(xg), target)
        (grad,) = torch.autograd.grad(clean, xg)
        d1 = grad.sign()
        generator = torch.Generator().manual_seed(seed)
        d2 = (torch.randint(0, 2, x.shape, generator=generator) * 2 - 1).to(device, x.dtype)

        # Integer arithmetic, so that the centre of an odd grid is exactly 0 and the ends +-eps.
        ticks = np.arange(resolution) * 2 - (resolution - 1)
        coords = eps * (ticks / (resolution - 1))
        grid = torch.tensor(coords, dtype=x.dtype, device=device)
        a = grid.repeat_interleave(resolution)  # row-major: flat k = i_a * resolution + i_b
        b = grid.repeat(resolution)
        shape = (-1, *([1] * (x.dim() - 1)))
        losses = []
        with torch.no_grad():
            for start in range(0, resolution * resolution, batch_size):
                ca, cb = a[start : start + batch_size], b[start : start + batch_size]
                points = (x + ca.view(shape) * d1 + cb.view(shape) * d2).clamp(0.0, 1.0)
                logits = model(points)
                losses.append(F.cross_entropy(logits, target.expand(len(points)), reduction="none"))
        loss = torch.cat(losses).view(resolution, resolution)
    return SurfaceData(
        alphas=coords.copy(),
        betas=coords.copy(),
        loss=loss.cpu().numpy(),
        clean_loss=float(clean.detach()),
        label=label,
        eps=float(eps),
        d1=d1.flatten().cpu().numpy(),
        d2=d2.flatten().cpu().numpy(),
        index=int(index),
        seed=int(seed),
    )


def plot_surfaces(
    surfaces: Sequence[tuple[str, SurfaceData]], path: str | Path, *, pdf: bool = False
) -> list[Path]:
    """Draw each named surface in 3D with its contours projected underneath, side by side.

    Returns the files written (``path`` as .png, and .pdf when asked).
    """
    if not surfaces:
        raise ValueError("no surfaces to plot")
    fig = Figure(figsize=(4.8 * len(surfaces), 4.2))
    for col, (name, surface) in enumerate(surfaces, start=1):
        ax = fig.add_subplot(1, len(surfaces), col, projection="3d")
        ax.set_box_aspect(None, zoom=0.85)  # room for the z label beside the next panel
        a, b = np.meshgrid(surface.alphas, surface.betas, indexing="ij")
        z = surface.loss
        low, high = float(np.nanmin(z)), float(np.nanmax(z))
        span = high - low if high > low else max(abs(high), 1.0) * 0.1
        floor = low - 0.6 * span
        ax.plot_surface(
            a,
            b,
            z,
            cmap="viridis",
            linewidth=0,
            antialiased=True,
            rcount=min(len(a), 100),
            ccount=min(len(b), 100),
            alpha=0.95,
        )
        if high > low:
            ax.contour(a, b, z, levels=8, zdir="z", offset=floor, cmap="viridis", linewidths=1.5)
        ax.set_zlim(floor, high + 0.1 * span)
        ticks = [-surface.eps, 0.0, surface.eps]
        labels = [f"{t:.3g}" for t in ticks]
        ax.set_xticks(ticks, labels)
        ax.set_yticks(ticks, labels)
        ax.set_xlabel(r"$\epsilon$ (gradient sign)")
        ax.set_ylabel(r"$\epsilon$ (random sign)")
        ax.set_zlabel(r"$\mathcal{L}(x)$")
        ax.ticklabel_format(axis="z", style="sci", scilimits=(-2, 3))
        ax.set_title(name)
    fig.subplots_adjust(wspace=0.15)
    return save_figure(fig, path, pdf=pdf)
