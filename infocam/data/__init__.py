"""Datasets: embedded real data and loaders for the user's own copies (the data root itself
lives in :mod:`infocam.paths`)."""

from infocam.data.mnist import Digits, load_mnist

__all__ = ["Digits", "load_mnist"]
