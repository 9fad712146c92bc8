"""Data sets as tensors: the registry, IDX files, checksummed downloads, evaluation subsets."""

from lpbench.data.datasets import (
    DATASETS,
    ArrayDataset,
    DatasetInfo,
    get_dataset_info,
    load_dataset,
)
from lpbench.data.download import ChecksumError, DatasetNotFoundError, download, sha256sum
from lpbench.data.idx import DataFormatError, read_idx, write_idx
from lpbench.data.subsets import evaluation_subset

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "ChecksumError",
    "DataFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "download",
    "evaluation_subset",
    "get_dataset_info",
    "load_dataset",
    "read_idx",
    "sha256sum",
    "write_idx",
]
