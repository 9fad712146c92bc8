"""Training batches from uint8 arrays: seeded, resumable order, split over processes.

Images stay uint8 (in memory or memory-mapped) until a batch is drawn; the trainer turns
each batch into float32 on its device. The order of an epoch is a permutation drawn from
(seed, epoch) alone, so a run resumed at step k of an epoch sees exactly the batches an
uninterrupted run would. With several processes, every global batch of ``batch_size``
images is cut into equal consecutive slices, one per rank: the processes together see
the same images, in the same batches, as one process would.

Augmentation is drawn per global batch from a generator keyed by (seed, epoch, step), so
it too does not depend on the number of processes or data-loading workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

AUGMENTATIONS = ("none", "tiny-imagenet")


class UInt8Batches(Dataset):
    """Index with a list of indices to get a batch: (uint8 images, labels, the indices)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError("expected uint8 images (N, C, H, W) and N labels")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # sorted reads are kinder to memory maps
        images = np.empty((len(idx), *self.images.shape[1:]), dtype=np.uint8)
        images[order] = self.images[idx[order]]
        labels = torch.from_numpy(self.labels[idx].astype(np.int64))
        return torch.from_numpy(images), labels, torch.from_numpy(idx)


class EpochBatches(Sampler[list[int]]):
    """This rank's slice of each global batch of one epoch, from ``start_step`` on.

    With ``world_size > 1`` a last, incomplete global batch is dropped (it could not be
    split evenly); a single process keeps it.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"the global batch size {batch_size} must be divisible by the number of "
                f"processes {world_size}"
            )
        self.num_items, self.batch_size = num_items, batch_size
        self.seed, self.epoch, self.start_step = seed, epoch, start_step
        self.rank, self.world_size = rank, world_size

    def steps(self) -> int:
        """Global batches in the epoch."""
        if self.world_size > 1:
            return self.num_items // self.batch_size
        return math.ceil(self.num_items / self.batch_size)

    def __len__(self) -> int:
        return max(self.steps() - self.start_step, 0)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        local = self.batch_size // self.world_size
        for step in range(self.start_step, self.steps()):
            batch = order[step * self.batch_size : (step + 1) * self.batch_size]
            if self.world_size > 1:
                batch = batch[self.rank * local : (self.rank + 1) * local]
            yield batch


def batch_loader(
    images: np.ndarray,
    labels: np.ndarray,
    sampler: EpochBatches,
    *,
    workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader yielding (uint8 images, labels, indices) batches in ``sampler``'s order."""
    return DataLoader(
        UInt8Batches(images, labels),
        sampler=sampler,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


def to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1] on ``device``."""
    return images.to(device, non_blocking=True).float().div_(255)


def _adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """HSV saturation times ``factor`` (clipped to 1), hue and value kept, as TF does.

    With V = max and m = min over RGB, each channel is V - S*V*k for a k fixed by the
    hue; scaling S scales (V - c) by S'/S = min(factor, V / (V - m)).
    """
    value = x.max(dim=1, keepdim=True).values
    spread = value - x.min(dim=1, keepdim=True).values
    limit = torch.where(spread > 0, value / spread.clamp_min(1e-12), torch.ones_like(value))
    ratio = torch.minimum(factor.view(-1, 1, 1, 1), limit)
    return value - ratio * (value - x)


def augment_tiny_imagenet(
    x: torch.Tensor, generator: torch.Generator, rows: slice, total: int
) -> torch.Tensor:
    """The ALP Tiny ImageNet augmentation: random crop, flip, saturation, resize back.

    Crop: a box of 50-100% of the area and aspect ratio 0.75-1.33 (20 tries, else the
    whole image), as ``sample_distorted_bounding_box`` with the whole image as the object
    box. Then a left-right flip with probability 1/2, saturation scaled by U(0.5, 2), and
    a bicubic resize to the input size, clamped to [0, 1]. Parameters are drawn for the
    whole global batch of ``total`` images and the rows ``rows`` applied to ``x``.
    """
    n, _, height, width = x.shape
    tries = 20
    area = torch.empty(total, tries).uniform_(0.5, 1.0, generator=generator) * height * width
    ratio = torch.empty(total, tries).uniform_(0.75, 1.33, generator=generator)
    box_h = (area / ratio).sqrt().round().long()
    box_w = (area * ratio).sqrt().round().long()
    fits = (box_h <= height) & (box_w <= width) & (box_h > 0) & (box_w > 0)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((total,), -1))
    pick = first.clamp_min(0)[:, None]
    box_h = torch.where(first >= 0, box_h.gather(1, pick)[:, 0], torch.full((total,), height))
    box_w = torch.where(first >= 0, box_w.gather(1, pick)[:, 0], torch.full((total,), width))
    top = (torch.rand(total, generator=generator) * (height - box_h + 1)).long()
    left = (torch.rand(total, generator=generator) * (width - box_w + 1)).long()
    flip = torch.rand(total, generator=generator) < 0.5
    saturation = torch.empty(total).uniform_(0.5, 2.0, generator=generator)
    idx = range(total)[rows]
    out = torch.empty_like(x)
    for i, j in enumerate(idx[:n]):
        crop = x[i : i + 1, :, top[j] : top[j] + box_h[j], left[j] : left[j] + box_w[j]]
        if flip[j]:
            crop = crop.flip(-1)
        crop = _adjust_saturation(crop, saturation[j : j + 1].to(x.device))
        out[i : i + 1] = F.interpolate(
            crop, size=(height, width), mode="bicubic", align_corners=False
        )
    return out.clamp_(0.0, 1.0)
