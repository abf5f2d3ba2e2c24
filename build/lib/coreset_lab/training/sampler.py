"""Epoch sampler over a subset of the train set that stays correct under DDP.

Lightning's DistributedSampler pads the last round with repeated samples, which would record some
samples twice in an epoch. Here the padding copies are encoded as ``index + n_total``: the dataset
loads ``index % n_total`` and the dynamics recorder ignores indices ``>= n_total``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    def __init__(
        self,
        indices: np.ndarray,
        n_total: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        self.n_total = n_total
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.indices) // self.world_size)

    def epoch_order(self) -> torch.Tensor:
        if not self.shuffle:
            return self.indices
        # Same permutation on every rank and for world_size=1, so rank r's k-th batch is exactly its
        # share of the single-device k-th batch.
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return self.indices[torch.randperm(len(self.indices), generator=g)]

    def __iter__(self):
        order = self.epoch_order()
        pad = len(self) * self.world_size - len(order)
        if pad:
            order = torch.cat([order, order[:pad] + self.n_total])
        return iter(order[self.rank :: self.world_size].tolist())
