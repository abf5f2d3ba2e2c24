"""Load the backbone out of a self-supervised checkpoint into a frozen encoder.

The official releases wrap their backbones in different ways:

* DINO: ``dino_*_pretrain.pth`` is a plain backbone state dict; the full checkpoints hold
  ``teacher`` (``backbone.*`` + ``head.*``) and ``student`` (``module.backbone.*`` + ...).
* SwAV: ``module.*`` with ``projection_head.*`` / ``prototypes.*`` (or a random ``fc``).
* MoCo-v3: ``state_dict`` with ``module.base_encoder.*``, ``module.momentum_encoder.*`` and
  ``module.predictor.*``; the base encoder's ``head``/``fc`` is the projection MLP.
* CLIP (OpenAI): a TorchScript archive with ``visual.*`` (OpenAI layout, converted to timm's by
  timm's own ViT filter) next to the text tower.
* I-JEPA / MSN: ``target_encoder`` / ``encoder``; Lightning: ``state_dict`` with ``model.``.

`load_encoder_weights` finds the tensors, strips wrapper prefixes, keeps the encoder's namespace,
drops projection/classifier heads the encoder does not have, loads the rest and says what it
dropped. A file that does not fit the architecture is a `UserError` naming both.
"""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from coreset_lab.errors import UserError
from coreset_lab.models.factory import _fmt_keys, load_weights_file

log = logging.getLogger(__name__)

# Sub-dicts of a full checkpoint, most preferred first: the EMA teacher / target encoder is what
# DINO, I-JEPA and MSN evaluate; then the usual training-checkpoint containers.
CONTAINER_KEYS = (
    "teacher",
    "target_encoder",
    "model_ema",
    "state_dict_ema",
    "state_dict",
    "model",
    "student",
    "encoder",
    "net",
    "network",
)
# Key prefixes, tried in this order: wrappers (DDP, torch.compile, Lightning), then the sub-network
# holding the encoder (MoCo base_encoder, MoCo-v2 encoder_q, DINO backbone, OpenCLIP trunk, CLIP
# visual). A prefix is applied only when it makes more of the file's keys match the encoder's.
PREFIXES = (
    "module.",
    "_orig_mod.",
    "model.",
    "net.",
    "base_encoder.",
    "encoder_q.",
    "backbone.",
    "visual.trunk.",
    "visual.",
    "encoder.",
    "trunk.",
)
# Top-level modules that are heads, never backbone: dropped when the encoder has no such tensor.
HEAD_NAMES = frozenset(
    {
        "head",
        "heads",
        "fc",
        "classifier",
        "projection_head",
        "projector",
        "projection",
        "prototypes",
        "predictor",
        "last_layer",
        "pre_logits",
    }
)
# Buffers that do not affect eval-mode outputs; their absence is not an error.
_BENIGN_SUFFIXES = ("num_batches_tracked",)


# ---------------------------------------------------------------------------------------- read


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(
            n.split("/", 2)[1:2] == ["code"] or n.endswith("/constants.pkl") for n in z.namelist()
        )


def read_checkpoint(path: str) -> Any:
    """The object in ``path``: a state dict, a dict of them, or a TorchScript module's state."""
    if _is_torchscript(path):  # OpenAI CLIP ships its models as TorchScript archives
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
                return torch.jit.load(path, map_location="cpu").state_dict()
        except Exception as e:  # noqa: BLE001
            raise UserError(f"cannot read TorchScript weights file {path}: {e}") from e
    return load_weights_file(path, "encoder weights")


def _is_state(obj: Any) -> bool:
    return isinstance(obj, Mapping) and any(isinstance(v, torch.Tensor) for v in obj.values())


def select_state_dict(
    obj: Any, path: str, checkpoint_key: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of the encoder's state dict inside a checkpoint, and where they were found."""
    where: list[str] = []
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if checkpoint_key:
        for part in str(checkpoint_key).split("."):
            if not isinstance(obj, Mapping) or part not in obj:
                have = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
                raise UserError(
                    f"{path} has no entry {checkpoint_key!r} (encoder.checkpoint_key); "
                    f"it has: {have}"
                )
            obj, where = obj[part], [*where, part]
    # A flat state dict never maps a key to a dict or a module, so a known container key that
    # does is always a wrapper (DINO's teacher next to its optimizer and a loss with tensors).
    while isinstance(obj, Mapping):
        key = next((k for k in CONTAINER_KEYS if isinstance(obj.get(k), Mapping | nn.Module)), None)
        if key is None:
            break
        obj, where = obj[key], [*where, key]
        if isinstance(obj, nn.Module):
            obj = obj.state_dict()
    if not _is_state(obj):
        keys = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise UserError(
            f"{path} does not hold a state dict (found {keys}); name the entry that does with "
            "encoder.checkpoint_key=<key>"
        )
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return state, ".".join(where) or "<root>"


# ------------------------------------------------------------------------------------- convert


def _matches(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> int:
    return sum(1 for k in state if k in own)


def strip_prefixes(
    state: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Apply the prefixes that make the file fit the encoder best.

    Returns (state, prefixes applied, keys dropped because they lay outside the kept namespace,
    e.g. a MoCo momentum encoder or a DINO head).
    """
    applied: list[str] = []
    dropped: list[str] = []
    while True:
        best = None
        current = _matches(state, own)
        for prefix in PREFIXES:
            inside = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if not inside:
                continue
            score = _matches(inside, own)
            # A wrapper every key carries is stripped even when nothing matches yet, so that
            # messages show the file's real names.
            if score > current or (score == current and len(inside) == len(state)):
                if best is None or score > best[0]:
                    best = (score, prefix, inside)
        if best is None:
            return state, applied, dropped
        _, prefix, inside = best
        dropped += [k for k in state if not k.startswith(prefix)]
        applied.append(prefix)
        state = inside


def _openai_clip_prefix(state: Mapping[str, torch.Tensor]) -> str | None:
    for k in state:
        if k.endswith("visual.class_embedding"):
            return k[: -len("class_embedding")]
    return None


def convert_for_model(
    state: dict[str, torch.Tensor], model: nn.Module
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Architecture-specific layouts: OpenAI CLIP -> timm ViT; pos-embed resampling (timm ViT)."""
    notes: list[str] = []
    try:
        from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
    except ImportError:  # pragma: no cover - timm is a dependency
        return state, notes
    clip_prefix = _openai_clip_prefix(state)
    if clip_prefix is not None:
        if not isinstance(model, VisionTransformer):
            raise UserError(
                f"OpenAI CLIP weights ({clip_prefix}* keys) need a timm CLIP ViT encoder "
                f"(e.g. vit_base_patch16_clip_quickgelu_224), not {type(model).__name__}"
            )
        visual = {"visual." + k[len(clip_prefix) :]: v for k, v in state.items()}
        visual = {k: v for k, v in visual.items() if k.startswith("visual.")}
        n_other = sum(1 for k in state if not k.startswith(clip_prefix))
        notes.append(f"converted OpenAI CLIP visual tower; ignored {n_other} text-tower tensors")
        return checkpoint_filter_fn(visual, model), notes
    if isinstance(model, VisionTransformer) and "pos_embed" in state:
        # Resamples the position embedding to the encoder's grid (another image_size) and
        # reshapes linear patch embeddings; a no-op for files that already fit.
        state = checkpoint_filter_fn(state, model)
    return state, notes


# ---------------------------------------------------------------------------------------- load


def _by_module(keys: list[str]) -> str:
    """'momentum_encoder.* (150), head.* (1)': dropped keys summarised by top-level module."""
    counts: dict[str, int] = {}
    for k in keys:
        top = k.split(".", 1)[0] + (".*" if "." in k else "")
        counts[top] = counts.get(top, 0) + 1
    return ", ".join(f"{top} ({n})" for top, n in counts.items())


def _is_head(key: str) -> bool:
    return key.split(".", 1)[0] in HEAD_NAMES


def _benign(key: str) -> bool:
    return key.endswith(_BENIGN_SUFFIXES)


def load_encoder_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    arch: str,
    *,
    checkpoint_key: str | None = None,
    strict: bool = True,
    min_fit: float = 0.5,
) -> dict[str, Any]:
    """Load the backbone weights in ``path`` into ``model`` (an encoder without head).

    Raises `UserError` when fewer than ``min_fit`` of the encoder's tensors are found in the file
    (wrong architecture), or, with ``strict``, when any encoder tensor stays unset. Returns a
    report: where the state dict was found, prefixes stripped, and the keys loaded, dropped (heads,
    other sub-networks), unexpected, missing and shape-mismatched.
    """
    path = os.fspath(os.path.expanduser(os.fspath(path)))
    if not os.path.isfile(path):
        raise UserError(f"encoder weights file not found: {path} (encoder.weights)")
    raw = read_checkpoint(path)
    state, where = select_state_dict(raw, path, checkpoint_key)
    own = model.state_dict()
    n_file = len(state)
    state, prefixes, outside = strip_prefixes(state, own)
    state, notes = convert_for_model(state, model)

    heads = sorted(k for k in state if k not in own and _is_head(k))
    unexpected = sorted(k for k in state if k not in own and not _is_head(k))
    mismatched = sorted(
        k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)
    )
    usable = {k: v for k, v in state.items() if k in own and k not in mismatched}
    needed = [k for k in own if not _benign(k)]
    missing = sorted(k for k in needed if k not in state)
    matched = sum(1 for k in needed if k in usable)
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched]
    file_keys = sorted(state) or sorted(outside)
    if matched < min_fit * len(needed) or matched == 0:
        detail = f"; shapes differ for {_fmt_keys(shapes, 3)}" if shapes else ""
        raise UserError(
            f"weights file {path} does not fit encoder {arch}: {matched} of {len(needed)} "
            f"tensors matched{detail}; expected keys like {_fmt_keys(needed, 4)}, the file "
            f"({where}, {n_file} tensors) has {_fmt_keys(file_keys, 4)}"
        )
    if strict and (missing or mismatched):
        parts = [f"missing {_fmt_keys(missing, 6)}"] if missing else []
        parts += [f"shapes differ for {_fmt_keys(shapes, 4)}"] if shapes else []
        raise UserError(
            f"weights file {path} leaves {len(needed) - matched} of {len(needed)} tensors of "
            f"encoder {arch} unset ({'; '.join(parts)}); pass encoder.strict=false to use it "
            "anyway"
        )
    model.load_state_dict(usable, strict=False)
    report = {
        "path": path,
        "source": where,
        "prefixes": prefixes,
        "loaded": sorted(usable),
        "dropped": sorted(outside) + heads,
        "unexpected": unexpected,
        "missing": missing,
        "shape_mismatch": mismatched,
    }
    lines = [
        f"encoder {arch}: loaded {len(usable)} tensors from {path} ({where}"
        + (f", stripped {''.join(prefixes)!r}" if prefixes else "")
        + ")"
    ]
    lines += notes
    if report["dropped"]:
        lines.append(
            f"  dropped {len(report['dropped'])} head/other-network tensors: "
            f"{_by_module(report['dropped'])}"
        )
    if unexpected:
        lines.append(f"  ignored {len(unexpected)} unknown tensors: {_fmt_keys(unexpected, 6)}")
    if missing or mismatched:
        lines.append(f"  NOT loaded (left random): {_fmt_keys(missing + shapes, 6)}")
    level = logging.WARNING if (unexpected or missing or mismatched) else logging.INFO
    log.log(level, "\n".join(lines))
    return report
