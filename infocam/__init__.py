"""infocam: the engine behind infocam-book.

Qin, Kim & Gedeon (arXiv:1911.10688): a softmax classifier trained with cross-entropy is a
mutual-information estimator; PC-softmax keeps that reading under label imbalance; infoCAM
turns the pointwise-MI difference into a localisation map.
"""

__version__ = "0.1.0"
