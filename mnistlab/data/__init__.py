"""Datasets: the IDX format, downloads with checksums, and the named datasets mnistlab knows."""

from mnistlab.data.datasets import (
    DATASET_NAMES,
    Dataset,
    Split,
    as_torch_dataset,
    dataset_root,
    download_dataset,
    list_datasets,
    load_dataset,
)

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "Split",
    "as_torch_dataset",
    "dataset_root",
    "download_dataset",
    "list_datasets",
    "load_dataset",
]
