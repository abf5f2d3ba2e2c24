"""One class per encoder kind (`encoder.kind`), registered at its definition: its options beyond
the common ones (`defaults`), the refusals its config alone decides (`check`) and its embeddings
(`embed`). The rest of the package looks a kind up by name; nothing else branches on it.

Nothing here reads a label: only ``data.train_eval`` images and the bundle's image statistics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from coreset_lab.data.base import DataBundle
from coreset_lab.embedding import simclr
from coreset_lab.embedding.encoders import (
    PRETRAINED_DEFAULTS,
    REQUIRED,
    _check_image_size,
    build_pretrained_encoder,
    build_timm,
    build_torchvision,
    check_channels,
    freeze,
    missing_weights,
    pca_embeddings,
    pixel_embeddings,
)
from coreset_lab.embedding.extract import extract
from coreset_lab.embedding.precomputed import load_precomputed
from coreset_lab.embedding.preprocess import pretrained_input
from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.values import check_bool, check_int, check_real


def given(value: object) -> bool:
    return value not in (None, "", REQUIRED)


def positive_int(opts: dict, key: str) -> None:
    v = opts[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise UserError(f"encoder.{key} must be a positive integer, got {v!r}")


def existing_file(opts: dict, key: str, required: str | None = None) -> None:
    value = opts.get(key)
    if required and not given(value):
        raise UserError(required)
    if given(value) and not Path(str(value)).is_file():
        raise UserError(f"encoder.{key}={value}: no such file")


class EncoderKind:
    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def check(self, opts: dict) -> None:
        """Refusals of the resolved options' values (defaults filled in, unknown keys refused)."""

    def check_files(self, opts: dict) -> None:
        """Refusals of the files the options name, before any work (not when only resolving)."""

    def embed(self, opts: dict, data: DataBundle, seed: int, dtype, out_path) -> np.ndarray:
        raise NotImplementedError


@register("encoder")
class Pixels(EncoderKind):
    name = "pixels"
    defaults = {"pool": 1}

    def check(self, opts):
        positive_int(opts, "pool")

    def embed(self, opts, data, seed, dtype, out_path):
        return pixel_embeddings(opts, data, dtype)


@register("encoder")
class Pca(EncoderKind):
    name = "pca"
    defaults = {"dim": 64, "whiten": False, "pool": 1}

    def check(self, opts):
        positive_int(opts, "pool")
        positive_int(opts, "dim")  # its upper bound, the pixel count, is checked on the data
        if not isinstance(opts["whiten"], bool):
            raise UserError(f"encoder.whiten must be true or false, got {opts['whiten']!r}")

    def embed(self, opts, data, seed, dtype, out_path):
        return pca_embeddings(opts, data, seed, dtype)


@register("encoder")
class SimCLR(EncoderKind):
    name = "simclr"
    defaults = {k: v for k, v in simclr.DEFAULTS.items() if k != "batch_size"}

    def check(self, opts):
        simclr.check_options({**simclr.DEFAULTS, **opts})

    def embed(self, opts, data, seed, dtype, out_path):
        return simclr.simclr_embeddings(opts, data, seed, dtype)[0]


@register("encoder")
class Precomputed(EncoderKind):
    """The user's own [N, d] file (embedding/precomputed.py); ids: an order file, if any."""

    name = "precomputed"
    defaults = {"path": REQUIRED, "ids": None}

    def check_files(self, opts):
        existing_file(
            opts, "path", "encoder=precomputed needs encoder.path=/path/to/embeddings.npy"
        )
        existing_file(opts, "ids")

    def embed(self, opts, data, seed, dtype, out_path):
        return load_precomputed(opts, data)


class Pretrained(EncoderKind):
    """A frozen pretrained network loaded from the local file `weights`, preprocessed as ELFS
    does (bicubic resize to `image_size`, ImageNet mean/std), pooled features without a head."""

    def check_files(self, opts):
        existing_file(opts, "weights", missing_weights(opts))

    def check(self, opts):
        for key in ("mean", "std"):
            v = opts[key]
            if not isinstance(v, list | tuple) or len(v) != 3:
                raise UserError(f"encoder.{key} must be 3 numbers (RGB), got {v!r}")
            for x in v:  # of [0, 1] pixels
                if key == "mean":
                    check_real(x, "encoder.mean", 0.0, 1.0)
                else:
                    check_real(x, "encoder.std", 0.0, math.inf, low_open=True)
        _check_image_size(opts)
        check_bool(opts["strict"], "encoder.strict")
        if opts["checkpoint_key"] is not None and not isinstance(opts["checkpoint_key"], str):
            raise UserError(
                f"encoder.checkpoint_key must be the name of a checkpoint entry or null, got "
                f"{opts['checkpoint_key']!r}"
            )

    def build(self, opts):
        """The network without its head, with random weights (nothing is downloaded)."""
        raise NotImplementedError

    def embed(self, opts, data, seed, dtype, out_path):
        check_channels(data)
        model = freeze(build_pretrained_encoder(opts))
        torch.manual_seed(seed)  # no randomness is used; kept so that every kind is seeded alike
        size, mean, std = int(opts["image_size"]), tuple(opts["mean"]), tuple(opts["std"])
        data_mean, data_std = data.mean, data.std
        return extract(
            model,
            data.train_eval,
            preprocess=lambda x: pretrained_input(x, size, data_mean, data_std, mean, std),
            batch_size=int(opts["batch_size"]),
            num_workers=opts["num_workers"],
            device=opts["device"],
            dtype=dtype,
            desc=f"{self.name} {opts['name']}",
            out_path=out_path,
        )


@register("encoder")
class Timm(Pretrained):
    name = "timm"
    defaults = {"name": REQUIRED, "num_classes": 0, "model_kwargs": {}, **PRETRAINED_DEFAULTS}

    def check(self, opts):
        super().check(opts)
        check_int(opts["num_classes"], "encoder.num_classes", 0)  # 0: pooled features
        if not isinstance(opts["model_kwargs"], dict):
            raise UserError(
                f"encoder.model_kwargs must be a mapping of timm.create_model options, got "
                f"{opts['model_kwargs']!r}"
            )

    def build(self, opts):
        return build_timm(opts)


@register("encoder")
class Torchvision(Pretrained):
    name = "torchvision"
    defaults = {"name": "resnet50", **PRETRAINED_DEFAULTS}

    def build(self, opts):
        return build_torchvision(opts)
