"""Datasets: embedded real data, loaders for the user's own copies, and the data root."""

from infocam.data.mnist import Digits, load_mnist
from infocam.data.root import DataError, cache_dir, data_root, find_dataset

__all__ = ["DataError", "Digits", "cache_dir", "data_root", "find_dataset", "load_mnist"]
