"""Label-free embeddings of a dataset's train images, for ELFS-style clustering and selection.

One entry point, `compute_embeddings(encoder_cfg, data, seed)`, driven by a ``conf/encoder/*.yaml``
dict whose ``kind`` names the encoder class (embedding/kinds.py, one registered class a kind):

* ``pixels``: flattened [0, 1] pixels (``pool``: average pooling first).
* ``pca``: PCA of the pixels to ``dim`` components (``whiten``), fitted on the train images.
* ``timm`` / ``torchvision``: a frozen pretrained network (``name``) loaded from the local file
  ``weights`` (DINO, SwAV, MoCo-v3, CLIP releases; see `checkpoints`), preprocessed as ELFS does
  (bicubic resize to ``image_size``, ImageNet mean/std), pooled features without any head.
* ``simclr``: SimCLR trained here on the train images (see `simclr`).
* ``precomputed``: the user's own embeddings file ``path`` (see `precomputed`), read, not computed.

Nothing here reads a label: only ``data.train_eval`` images and the bundle's image statistics.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.data.base import DataBundle
from coreset_lab.embedding.checkpoints import load_encoder_weights
from coreset_lab.embedding.encoders import KINDS, resolve_options
from coreset_lab.embedding.extract import embed_dtype, extract
from coreset_lab.embedding.preprocess import pretrained_input
from coreset_lab.embedding.simclr import train_simclr
from coreset_lab.registry import import_all

import_all("coreset_lab.embedding")  # every encoder kind registers at its definition

__all__ = [
    "KINDS",
    "check_encoder",
    "compute_embeddings",
    "extract",
    "load_encoder_weights",
    "pretrained_input",
    "resolve_options",
    "train_simclr",
]


def check_encoder(node) -> None:
    """Every refusal of an encoder config the config alone decides (the PCA dimension's upper
    bound, the pixel count, is checked on the data)."""
    opts = resolve_options(node)
    KINDS[opts["kind"]]().check_files(opts)


def compute_embeddings(
    encoder_cfg: dict, data: DataBundle, seed: int = 0, out_path=None
) -> np.ndarray:
    """[N_train, d] float32 embeddings of ``data.train_eval`` (un-augmented, train order).

    Label-free: never reads ``data.train_targets`` / ``test_targets``. ``encoder_cfg`` is a plain
    dict (or DictConfig) from ``conf/encoder/<name>.yaml``; a pretrained encoder whose ``weights``
    is missing ("???") raises a `UserError` asking for ``encoder.weights=/path/to/file``.
    ``embed_dtype: float16`` returns float16 instead. With ``out_path`` the embeddings are also
    in that ``.npy`` file (pretrained encoders stream into it, memory-mapped, batch by batch).
    """
    z = _embeddings(encoder_cfg, data, seed, out_path)
    if out_path is not None and not isinstance(z, np.memmap):
        np.save(out_path, z)
    return z


def _embeddings(encoder_cfg, data: DataBundle, seed: int, out_path) -> np.ndarray:
    opts = resolve_options(encoder_cfg)
    return KINDS[opts["kind"]]().embed(opts, data, seed, embed_dtype(opts["embed_dtype"]), out_path)
