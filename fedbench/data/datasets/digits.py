"""scikit-learn's bundled 8x8 handwritten digits: real images, no download."""
from __future__ import annotations

import numpy as np

from fedbench.data.datasets import DatasetRecord, register
from fedbench.data.types import RawDataset


def load_digits(params, root, download, verify, seed, num_clients) -> RawDataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 real images, 10 classes).

    x: float32 (N, 64), pixels (0..16) centred as the field does: (x / 16 - 0.5) / 0.5, in [-1, 1]
    (PFLlib's digits, torchvision's usual MNIST-style Normalize((0.5,), (0.5,))). Inputs in [0, 1]
    slow every method down, FedAvg under label skew most (2 classes per client, 100 rounds: 67.4% vs
    85.8%). No natural groups.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = ((bunch.data / 16.0 - 0.5) / 0.5).astype(np.float32)
    y = bunch.target.astype(np.int64)
    return RawDataset(name="digits", x=x, y=y, num_classes=10, groups=None)


register(DatasetRecord(name="digits", load=load_digits, ranges={}, input_shape=(64,), num_classes=10, size=1797,
                       groups=False, image_shape=(1, 8, 8), offline=True))
