"""Encoder options per kind, and the encoders themselves: pixels, PCA, timm and torchvision.

Every pretrained encoder is built with random weights (nothing is downloaded), has its classifier
or projection head removed (timm ``num_classes=0``; torchvision ``fc``/``heads``/``classifier``
replaced by Identity, so a SwAV or DINO ResNet-50 gives its 2048-d pooled features, never a
random projection of them) and then receives the weights file given as ``encoder.weights``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch import nn

from coreset_lab.data.base import DataBundle
from coreset_lab.embedding.checkpoints import load_encoder_weights
from coreset_lab.embedding.extract import embed_dtype, extract
from coreset_lab.embedding.preprocess import IMAGENET_MEAN, IMAGENET_STD, pixel_input
from coreset_lab.errors import UserError
from coreset_lab.registry import registered

log = logging.getLogger(__name__)

REQUIRED = "???"  # OmegaConf's mandatory marker, as a plain dict carries it

COMMON: dict[str, Any] = {
    "kind": REQUIRED,
    "batch_size": 256,
    "num_workers": "auto",  # auto: 0 for in-memory data, decoding workers for image files
    "device": "auto",
    "embed_dtype": "float32",
}
PRETRAINED_DEFAULTS: dict[str, Any] = {
    "weights": REQUIRED,
    "image_size": 224,
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "checkpoint_key": None,  # entry of a full checkpoint to read (default: teacher, state_dict..)
    "strict": True,  # every encoder tensor must come from the file
    "release": None,  # where the weights come from, for messages
}
# kind -> its class (embedding/kinds.py registers every kind at its definition).
KINDS = registered("encoder")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", REQUIRED))


def resolve_options(cfg: Any) -> dict[str, Any]:
    """The encoder config with defaults filled in; unknown keys and bad values are `UserError`."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    if not isinstance(cfg, dict):
        raise UserError(f"encoder config must be a mapping with a 'kind', got {cfg!r}")
    kind = cfg.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise UserError(
            f"encoder.kind must be one of {', '.join(KINDS)}, got {kind!r} "
            "(pick a config: encoder=pixels|pca|simclr|dino_vitb16|swav_resnet50|...)"
        )
    allowed = {**COMMON, **KINDS[kind].defaults}
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise UserError(
            f"encoder kind {kind!r} has no option {', '.join('encoder.' + k for k in unknown)}; "
            f"it takes: {', '.join(sorted(allowed))}"
        )
    opts = {**allowed, **cfg}
    v = opts["batch_size"]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise UserError(f"encoder.batch_size must be a positive integer, got {v!r}")
    v = opts["num_workers"]
    if v != "auto" and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
        raise UserError(f"encoder.num_workers must be auto or an integer >= 0, got {v!r}")
    embed_dtype(opts["embed_dtype"])
    KINDS[kind]().check(opts)
    return opts


# ------------------------------------------------------------------------------ pixel baselines


def pixel_embeddings(opts: dict[str, Any], data: DataBundle, dtype=np.float32) -> np.ndarray:
    """Flattened [0, 1] train pixels (after ``pool`` x ``pool`` average pooling)."""
    mean, std, pool = data.mean, data.std, int(opts["pool"])
    return extract(
        nn.Identity(),
        data.train_eval,
        preprocess=lambda x: pixel_input(x, mean, std, pool),
        batch_size=int(opts["batch_size"]),
        num_workers=opts["num_workers"],
        device="cpu",
        dtype=dtype,
        desc="pixels",
    )


def pca_embeddings(
    opts: dict[str, Any], data: DataBundle, seed: int = 0, dtype=np.float32
) -> np.ndarray:
    """PCA of the train pixels to ``dim`` components, fitted on the train images only."""
    from sklearn.decomposition import PCA

    x = pixel_embeddings(opts, data)
    dim = opts["dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= min(x.shape):
        raise UserError(
            f"encoder.dim must be an integer in [1, {min(x.shape)}] for {x.shape[0]} images of "
            f"{x.shape[1]} pixel values, got {dim!r}"
        )
    pca = PCA(n_components=dim, whiten=bool(opts["whiten"]), random_state=seed)
    z = pca.fit_transform(x.astype(np.float64 if x.shape[1] <= 4096 else np.float32))
    log.info(
        "PCA to %d dims keeps %.1f%% of the pixel variance",
        dim,
        100 * float(pca.explained_variance_ratio_.sum()),
    )
    return z.astype(dtype)


# ---------------------------------------------------------------------------- pretrained nets


def describe(opts: dict[str, Any]) -> str:
    """A short name for messages: 'timm vit_base_patch16_224 (DINO ViT-B/16: ...)'."""
    text = f"{opts['kind']} {opts.get('name')}"
    if opts.get("release"):
        text += f" ({opts['release']})"
    return text


def missing_weights(opts: dict[str, Any]) -> str:
    return (
        f"encoder {describe(opts)} needs its pretrained weights, which are never downloaded: "
        "pass encoder.weights=/path/to/file"
    )


def _weights_path(opts: dict[str, Any]) -> str:
    if _missing(opts.get("weights")):
        raise UserError(missing_weights(opts))
    return str(opts["weights"])


def _check_image_size(opts: dict[str, Any]) -> int:
    v = opts["image_size"]
    if isinstance(v, bool) or not isinstance(v, int) or v < 8:
        raise UserError(f"encoder.image_size must be an integer >= 8, got {v!r}")
    return v


def build_timm(opts: dict[str, Any]) -> nn.Module:
    from coreset_lab.models.factory import _build_timm

    if _missing(opts.get("name")):
        raise UserError("encoder kind timm needs a model name: encoder.name=vit_small_patch16_224")
    num_classes = opts["num_classes"]  # the options were checked by kinds.Timm.check
    kwargs = dict(opts.get("model_kwargs") or {})
    return _build_timm(num_classes, 3, _check_image_size(opts), name=opts["name"], **kwargs)


def drop_classifier(model: nn.Module, name: str) -> int:
    """Replace a torchvision model's final linear layer by Identity; returns the feature dim."""
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):  # ResNet, ResNeXt, Wide ResNet, RegNet, GoogLeNet, Inception
        model.fc = nn.Identity()
        return fc.in_features
    heads = getattr(model, "heads", None)
    if isinstance(heads, nn.Sequential) and isinstance(heads[-1], nn.Linear):  # ViT
        model.heads = nn.Identity()
        return heads[-1].in_features
    clf = getattr(model, "classifier", None)
    if isinstance(clf, nn.Linear):  # DenseNet
        model.classifier = nn.Identity()
        return clf.in_features
    if isinstance(clf, nn.Sequential) and isinstance(clf[-1], nn.Linear):  # ConvNeXt, EfficientNet
        dim = clf[-1].in_features
        clf[-1] = nn.Identity()
        return dim
    raise UserError(f"torchvision model {name!r}: cannot find its classifier layer to remove")


def build_torchvision(opts: dict[str, Any]) -> nn.Module:
    import torchvision

    name = opts["name"]
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise UserError(f"torchvision has no classification model {name!r}; known: {known}")
    model = torchvision.models.get_model(name, weights=None)
    dim = drop_classifier(model, name)
    log.debug("torchvision %s: %d-d features", name, dim)
    return model


def build_pretrained_encoder(opts: dict[str, Any]) -> nn.Module:
    """A timm or torchvision encoder (no head) with the weights file loaded."""
    path = _weights_path(opts)
    model = KINDS[opts["kind"]]().build(opts)
    load_encoder_weights(
        model,
        path,
        describe(opts),
        checkpoint_key=opts.get("checkpoint_key"),
        strict=bool(opts.get("strict", True)),
    )
    return model.eval()


def check_channels(data: DataBundle) -> None:
    if data.in_channels not in (1, 3):
        raise UserError(
            f"pretrained encoders take RGB (or grey) images; {data.name} has {data.in_channels} "
            "channels (use encoder=simclr, pca or pixels)"
        )


def freeze(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
