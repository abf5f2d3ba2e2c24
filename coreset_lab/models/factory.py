"""``build_model``: one entry point from a config's ``arch`` + ``kwargs`` to a classifier.

Every model maps float ``[B, in_channels, H, W]`` to logits ``[B, num_classes]``. Nothing is ever
downloaded: torchvision and timm models are built with random weights, and the optional
``weights`` kwarg (accepted by every arch) loads a local state-dict file instead.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from coreset_lab.errors import UserError
from coreset_lab.registry import lookup, register, registered

from .cifar_resnet import cifar_resnet18, cifar_resnet34
from .small_cnn import SmallCNN

log = logging.getLogger(__name__)

# Kwargs every arch accepts on top of its own.
_COMMON_KWARGS = {"weights": None}

# Keys a timm user might pass but that build_model owns (they come from the dataset / policy).
_TIMM_RESERVED = {
    "num_classes": "it is set from the dataset",
    "in_chans": "it is set from the dataset's channel count",
    "pretrained": "nothing is downloaded; give a local state-dict file as `weights: <path>`",
    "pretrained_cfg_overlay": "nothing is downloaded; give a local file as `weights: <path>`",
}

# Prefixes added by DataParallel/DDP, torch.compile and LightningModule wrappers.
_STRIP_PREFIXES = ("module.", "_orig_mod.", "model.", "net.", "backbone.")


# --------------------------------------------------------------------------------------- checks


def _positive_int(arch: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"model {arch!r}: {name} must be a positive integer, got {value!r}")
    return value


def _bool(arch: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"model {arch!r}: {name} must be true or false, got {value!r}")
    return value


# ------------------------------------------------------------------------------------- builders


@register("model", "small_cnn")
def _build_small_cnn(
    num_classes: int, in_channels: int, image_size: int, *, width: int = 32, depth: int = 3
) -> nn.Module:
    width = _positive_int("small_cnn", "width", width)
    depth = _positive_int("small_cnn", "depth", depth)
    return SmallCNN(num_classes, in_channels, image_size, width=width, depth=depth)


def _cifar_builder(fn: Callable[..., nn.Module], arch: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, in_channels: int, image_size: int, *, width: int = 64) -> nn.Module:
        return fn(num_classes, in_channels, width=_positive_int(arch, "width", width))

    return build


def _torchvision_builder(arch: str) -> Callable[..., nn.Module]:
    def build(
        num_classes: int, in_channels: int, image_size: int, *, zero_init_residual: bool = False
    ) -> nn.Module:
        import torchvision

        ctor = getattr(torchvision.models, arch)
        model = ctor(
            weights=None,
            num_classes=num_classes,
            zero_init_residual=_bool(arch, "zero_init_residual", zero_init_residual),
        )
        if in_channels != 3:
            old = model.conv1
            model.conv1 = nn.Conv2d(
                in_channels,
                old.out_channels,
                kernel_size=old.kernel_size,
                stride=old.stride,
                padding=old.padding,
                bias=False,
            )
            nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        return model

    return build


@register("model", "timm")
def _build_timm(
    num_classes: int, in_channels: int, image_size: int, *, name: str | None = None, **extra: Any
) -> nn.Module:
    import timm

    if not name or not isinstance(name, str):
        raise UserError(
            "model 'timm' needs a timm model name: set model.kwargs.name (e.g. resnet18, "
            "vit_tiny_patch16_224)"
        )
    reserved = sorted(k for k in extra if k in _TIMM_RESERVED)
    if reserved:
        why = "; ".join(f"{k}: {_TIMM_RESERVED[k]}" for k in reserved)
        raise UserError(f"model 'timm': do not pass {', '.join(reserved)} ({why})")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(
            f"timm does not know a model named {name!r} (timm {timm.__version__}).{hint} "
            "List names with `python -c \"import timm; print(timm.list_models('*pattern*'))\"`."
        )

    extra = dict(extra)
    auto_img_size = False
    if "img_size" not in extra:
        # Fixed-input models (ViTs, Swin, ...) must be told the image size or forward() rejects
        # inputs of any other size; convnets do not take the argument.
        cfg = timm.models.get_pretrained_cfg(name)
        default = tuple(cfg.input_size[-2:]) if cfg is not None and cfg.input_size else None
        if cfg is not None and cfg.fixed_input_size and default != (image_size, image_size):
            extra["img_size"] = image_size
            auto_img_size = True

    def create(**kw: Any) -> nn.Module:
        return timm.create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kw
        )

    try:
        return create(**extra)
    except TypeError as e:
        if auto_img_size and "img_size" in str(e):
            extra.pop("img_size")
            try:
                return create(**extra)
            except TypeError as e2:
                e = e2
        if extra:
            raise UserError(
                f"timm model {name!r} rejected kwargs {sorted(extra)}: {e}. Remove them from "
                "model.kwargs."
            ) from e
        raise
    except (ValueError, AssertionError, RuntimeError) as e:
        raise UserError(
            f"timm could not build {name!r} with num_classes={num_classes}, "
            f"in_chans={in_channels}, kwargs={extra}: {e}"
        ) from e


for _arch, _fn in (("cifar_resnet18", cifar_resnet18), ("cifar_resnet34", cifar_resnet34)):
    register("model", _arch)(_cifar_builder(_fn, _arch))
for _arch in ("resnet18", "resnet34", "resnet50"):
    register("model", _arch)(_torchvision_builder(_arch))


def arch_kwargs(builder: Callable[..., nn.Module]) -> dict[str, Any]:
    """An arch's own kwargs and their defaults: its builder's keyword-only parameters."""
    params = inspect.signature(builder).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


KNOWN_ARCHS = registered("model")  # arch -> builder, every registered one (live)


# -------------------------------------------------------------------------------- weights file


def load_weights_file(path: str, what: str = "model weights") -> Any:
    """What a weights file holds: a .safetensors dict, or a torch.save object, read as plain
    tensors first and only after a warning with weights_only=False (Lightning, MoCo and DINO
    checkpoints pickle their configs)."""
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError as e:  # pragma: no cover - safetensors ships with timm
            raise UserError(f"{path}: reading .safetensors needs the safetensors package") from e
        return dict(load_file(path, device="cpu"))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001
        log.warning(
            "%s is not a plain tensor file (%s); loading it with weights_only=False. "
            "Only do this for files you trust.",
            path,
            type(first).__name__,
        )
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001
            raise UserError(f"cannot read {what} from {path}: {e}") from e


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    obj = load_weights_file(path)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    for key in ("state_dict_ema", "model_ema", "state_dict", "model", "net"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise UserError(f"{path} does not hold a state dict (got {type(obj).__name__})")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _strip_prefixes(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    changed = True
    while changed and state and not (set(state) & own):
        changed = False
        for prefix in _STRIP_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
                break
    return state


def _fmt_keys(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_local_weights(model: nn.Module, path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Load a local state dict into ``model`` non-strictly and report what did not fit.

    Tensors whose shape differs from the model's (typically a classifier head trained for another
    number of classes) are skipped. Missing, unexpected and skipped keys are logged as a warning
    and returned; a file that matches none of the model's parameters is a ``UserError``.
    """
    path = os.fspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise UserError(f"model weights file not found: {path}")
    own = model.state_dict()
    state = _strip_prefixes(_read_state_dict(path), set(own))
    mismatched = sorted(
        k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)
    )
    mismatch_detail = [
        f"{k} {tuple(state.pop(k).shape)} vs model {tuple(own[k].shape)}" for k in mismatched
    ]
    result = model.load_state_dict(state, strict=False)
    report = {
        "missing": sorted(result.missing_keys),
        "unexpected": sorted(result.unexpected_keys),
        "shape_mismatch": mismatched,
    }
    loaded = len(state) - len(report["unexpected"])
    if loaded == 0:
        raise UserError(
            f"{path}: none of its {len(state) + len(mismatched)} tensors match the model "
            f"({type(model).__name__}); expected keys like {_fmt_keys(sorted(own), 5)}, "
            f"file has {_fmt_keys(sorted(state) or mismatched, 5)}"
        )
    if any(report.values()):
        lines = [f"loaded {loaded}/{len(own)} tensors from {path}; not loaded:"]
        if report["missing"]:
            lines.append(
                f"  missing from file ({len(report['missing'])}): {_fmt_keys(report['missing'])}"
            )
        if report["unexpected"]:
            n = len(report["unexpected"])
            lines.append(f"  unexpected in file ({n}): {_fmt_keys(report['unexpected'])}")
        if mismatched:
            lines.append(
                f"  shape mismatch, skipped ({len(mismatched)}): {_fmt_keys(mismatch_detail)}"
            )
        log.warning("\n".join(lines))
    else:
        log.info("loaded all %d tensors from %s", loaded, path)
    return report


# --------------------------------------------------------------------------------- entry point


def build_model(
    arch: str, num_classes: int, in_channels: int = 3, image_size: int = 32, **kwargs: Any
) -> nn.Module:
    """Build a classifier ``[B, in_channels, H, W] -> [B, num_classes]``.

    Known archs: ``small_cnn`` (width, depth), ``cifar_resnet18`` / ``cifar_resnet34`` (width),
    ``resnet18`` / ``resnet34`` / ``resnet50`` (torchvision, zero_init_residual) and ``timm``
    (name, plus any kwarg of that timm model). Every arch also takes ``weights``: a local
    state-dict file loaded non-strictly (see :func:`load_local_weights`).
    Unknown archs or kwargs raise :class:`UserError`.
    """
    key = str(arch).strip().lower().replace("-", "_")
    builder = lookup("model", key, "model.arch")
    num_classes = _positive_int(key, "num_classes", num_classes)
    in_channels = _positive_int(key, "in_channels", in_channels)
    image_size = _positive_int(key, "image_size", image_size)

    kwargs = dict(kwargs)
    weights = kwargs.pop("weights", _COMMON_KWARGS["weights"])
    allowed = arch_kwargs(builder)
    if key != "timm":
        unknown = sorted(k for k in kwargs if k not in allowed)
        if unknown:
            known = ", ".join([*allowed, *_COMMON_KWARGS]) or "none"
            raise UserError(
                f"model {key!r} does not take kwargs {', '.join(unknown)}; it takes: {known}"
            )

    model = builder(num_classes, in_channels, image_size, **kwargs)
    if weights is not None:
        if not isinstance(weights, str | os.PathLike):
            raise UserError(f"model {key!r}: weights must be a file path, got {weights!r}")
        load_local_weights(model, weights)
    return model
