"""Tiny ImageNet: the official archive layout, converted once to a compact uint8 cache.

The archive (``tiny-imagenet-200.zip``, or the folder it unpacks to) holds ``wnids.txt``,
``train/<wnid>/images/*.JPEG`` (500 per class) and ``val/images/*.JPEG`` with
``val/val_annotations.txt``. Decoding 110,000 JPEGs every run is slow, so
:func:`prepare_tiny_imagenet` writes them once as ``.npy`` arrays (uint8, N x 3 x 64 x 64),
which training memory-maps. Labels index the sorted WordNet ids; validation images keep
the order of ``val_annotations.txt``, whose first 1,000 are the original paper's evaluation subset.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from lpbench.data.download import DatasetNotFoundError, download
from lpbench.data.idx import DataFormatError
from lpbench.data.info import DatasetInfo
from lpbench.io import atomic_write, read_json, write_json

TINY_IMAGENET_FILES = {
    "train": ("train-images.npy", "train-labels.npy"),
    "test": ("val-images.npy", "val-labels.npy"),
}
ARCHIVE = "tiny-imagenet-200.zip"
ARCHIVE_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
#: No SHA-256 is published for the archive; this is its widely used MD5.
ARCHIVE_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
SIZE = 64
_CHUNK = 1000


class _Source:
    """Read files of the archive layout from a folder or straight from the zip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as err:
                raise DataFormatError(f"{path}: truncated or not a zip archive ({err})") from err
            names = set(self.zip.namelist())
            root = next((p for p in ("", "tiny-imagenet-200/") if f"{p}wnids.txt" in names), None)
            self.names = names
        else:
            root = next(
                (p for p in ("", "tiny-imagenet-200/") if (path / p / "wnids.txt").is_file()), None
            )
        if root is None:
            raise DataFormatError(f"{path}: no wnids.txt (is this the Tiny ImageNet archive?)")
        self.root: str = root

    def read(self, rel: str) -> bytes:
        name = self.root + rel
        try:
            if self.zip is not None:
                return self.zip.read(name)
            return (self.path / name).read_bytes()
        except (KeyError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise DataFormatError(f"{self.path}: cannot read {name} ({err})") from err

    def list_images(self, rel_dir: str) -> list[str]:
        """Relative paths of the ``.JPEG`` files in a folder, sorted."""
        if self.zip is not None:
            prefix = self.root + rel_dir + "/"
            found = [
                n[len(self.root) :]
                for n in self.names
                if n.startswith(prefix) and n.endswith(".JPEG") and "/" not in n[len(prefix) :]
            ]
        else:
            folder = self.path / self.root / rel_dir
            found = [f"{rel_dir}/{p.name}" for p in folder.glob("*.JPEG")]
        return sorted(found)


def index_archive(source: _Source) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """The sorted WordNet ids and, per split, (relative image path, label) in order."""
    wnids = sorted(source.read("wnids.txt").decode().split())
    if not wnids:
        raise DataFormatError(f"{source.path}: wnids.txt is empty")
    label = {w: i for i, w in enumerate(wnids)}
    train = [(rel, label[w]) for w in wnids for rel in source.list_images(f"train/{w}/images")]
    val = []
    for line in source.read("val/val_annotations.txt").decode().splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        if parts[1] not in label:
            raise DataFormatError(f"val_annotations.txt names unknown class {parts[1]}")
        val.append((f"val/images/{parts[0]}", label[parts[1]]))
    return wnids, {"train": train, "test": val}


def decode(data: bytes, where: str) -> np.ndarray:
    """A 64 x 64 JPEG as uint8 (3, 64, 64); grayscale images are repeated over RGB."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataFormatError(f"{where}: truncated or not an image ({err})") from err
    if rgb.shape != (SIZE, SIZE, 3):
        raise DataFormatError(f"{where}: expected 64 x 64 pixels, found {rgb.shape[:2]}")
    return rgb.transpose(2, 0, 1)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _convert_split(
    source: _Source,
    items: list[tuple[str, int]],
    images_path: Path,
    labels_path: Path,
    progress: bool,
) -> None:
    """Decode ``items`` into ``images_path``; resumable: a kill keeps the finished chunks."""
    if images_path.is_file() and labels_path.is_file():
        return
    partial = images_path.with_name(images_path.name + ".partial")
    state_path = images_path.with_name(images_path.name + ".progress.json")
    n = len(items)
    state = read_json(state_path) if state_path.is_file() and partial.is_file() else None
    if state is not None and state.get("total") == n:
        images = np.lib.format.open_memmap(partial, mode="r+")
        done = int(state["done"])
    else:
        shape = (n, 3, SIZE, SIZE)
        images = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
        done = 0
    with tqdm(
        total=n, initial=done, desc=images_path.stem, unit="img", disable=not progress, leave=False
    ) as bar:
        for start in range(done, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            for i in range(start, stop):
                images[i] = decode(source.read(items[i][0]), f"{source.path}:{items[i][0]}")
            images.flush()
            write_json(state_path, {"total": n, "done": stop})
            bar.update(stop - start)
    del images
    labels = np.asarray([label for _, label in items], dtype=np.int64)
    atomic_write(labels_path, lambda tmp: _save_npy(tmp, labels))
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, images_path)
    state_path.unlink(missing_ok=True)


def prepare_tiny_imagenet(
    out_dir: str | os.PathLike,
    source: str | os.PathLike | None = None,
    *,
    download_archive: bool = True,
    progress: bool = True,
) -> Path:
    """Convert the archive (a folder or the zip) into the uint8 cache in ``out_dir``.

    Without ``source`` the zip is looked for in ``out_dir`` and, if absent and allowed,
    downloaded from the official URL (verified by MD5). Finished splits are skipped and a
    split interrupted mid-way continues where it stopped. Returns ``out_dir``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if source is None:
        source = out / ARCHIVE
        if not source.is_file():
            if not download_archive:
                raise DatasetNotFoundError(
                    f"no {ARCHIVE} in {out}: pass --source with the unpacked folder or the zip, "
                    f"or allow downloading it from {ARCHIVE_URL}"
                )
            download([ARCHIVE_URL], source, None, md5=ARCHIVE_MD5, progress=progress)
    src = _Source(Path(source))
    wnids, splits = index_archive(src)
    write_json(out / "wnids.json", wnids)
    for split, (images_name, labels_name) in TINY_IMAGENET_FILES.items():
        _convert_split(src, splits[split], out / images_name, out / labels_name, progress)
    return out


def read_tiny_imagenet_cache(
    info: DatasetInfo, split: str, paths: Sequence[Path]
) -> tuple[np.ndarray, np.ndarray]:
    """The registry reader: memory-map the prepared arrays, validated."""
    images_path, labels_path = paths
    try:
        images = np.load(images_path, mmap_mode="r", allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataFormatError(
            f"{images_path.parent}: truncated or invalid cache ({err}); delete it and run "
            "`lpbench data prepare tiny-imagenet` again"
        ) from err
    if images.dtype != np.uint8 or images.shape[1:] != info.input_shape:
        raise DataFormatError(
            f"{images_path}: expected uint8 N x 3 x 64 x 64, found {images.dtype} {images.shape}"
        )
    if labels.shape != (len(images),) or (labels.size and labels.max() >= info.num_classes):
        raise DataFormatError(f"{labels_path}: expected {len(images)} labels in [0, 200)")
    return images, labels.astype(np.int64)
