"""scikit-learn's bundled 8x8 digits: a dataset that needs no files, for tests and CPU recipes."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from coreset_lab.data.base import Augment, DataBundle, TensorImageSet
from coreset_lab.registry import register

TEST_SIZE = 450  # of 1797: 1347 train / 450 test, fixed so results are comparable across runs
SPLIT_SEED = 0
# Computed from the 1347 train images (checked by tests/test_data.py).
MEAN = (0.3053,)
STD = (0.3758,)


@register("dataset", "digits")
def build_digits(root: str | None = None, download: bool = False) -> DataBundle:
    """`root` and `download` are accepted for a uniform interface; the data ships with sklearn."""
    del root, download
    x, y = load_digits(return_X_y=True)
    # Pixel values are 0..16; stretch to the 0..255 uint8 range every tensor set uses.
    images = np.round(x * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    train_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=TEST_SIZE, stratify=y, random_state=SPLIT_SEED
    )
    # Sorted so that train order is the natural file order, independent of the shuffle.
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    train = TensorImageSet(torch.from_numpy(images[train_idx]), y[train_idx])
    return DataBundle(
        name="digits",
        train=train,
        train_eval=train,
        test=TensorImageSet(torch.from_numpy(images[test_idx]), y[test_idx]),
        num_classes=10,
        in_channels=1,
        image_size=8,
        mean=MEAN,
        std=STD,
        # Digits are not mirror-symmetric, so no flip; 1 px shifts on an 8 px image.
        augment=Augment(crop_pad=1, flip=False),
        class_names=[str(d) for d in range(10)],
    )
