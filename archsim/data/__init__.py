"""Data sets: loaders for MNIST and Fashion-MNIST IDX files (see ``datasets.py``)."""

from archsim.data.datasets import (
    DATASETS,
    SHA256_DECOMPRESSED,
    SPLITS,
    cache_dir,
    clear_cache,
    find_dataset_dir,
    load_split,
)

__all__ = [
    "DATASETS",
    "SHA256_DECOMPRESSED",
    "SPLITS",
    "cache_dir",
    "clear_cache",
    "find_dataset_dir",
    "load_split",
]
