"""Embeddings: pixel/PCA/SimCLR encoders, SSL checkpoint loading, preprocessing, label-freeness."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from PIL import Image
from torch import nn
from torchvision import transforms as T

from coreset_lab.data import TensorImageSet, apply_subsets, build_dataset
from coreset_lab.embedding import compute_embeddings
from coreset_lab.embedding.checkpoints import load_encoder_weights, read_checkpoint
from coreset_lab.embedding.encoders import KINDS, build_pretrained_encoder, resolve_options
from coreset_lab.embedding.preprocess import IMAGENET_MEAN, IMAGENET_STD, pretrained_input
from coreset_lab.embedding.simclr import DEFAULTS as SIMCLR_DEFAULTS
from coreset_lab.embedding.simclr import nt_xent, random_resized_crop, train_simclr
from coreset_lab.errors import UserError
from coreset_lab.run.config import CONF_DIR as CONF

CONF_DIR = Path(CONF) / "encoder"
SIMCLR_FAST = {"kind": "simclr", "epochs": 2, "width": 8, "batch_size": 128, "lr": 0.3}


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny CPU models on a shared machine run many times faster on one thread than on two.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits")


class NoLabels(TensorImageSet):
    """A train set whose labels cannot be read: proves an encoder never looks at them."""

    @property
    def targets(self):
        raise AssertionError("the encoder read the labels")

    @targets.setter
    def targets(self, value):
        self._hidden = value


def shuffled_labels(data, seed=1):
    images = data.train_eval.images
    targets = np.random.default_rng(seed).permutation(data.train_eval.targets)
    ts = TensorImageSet(images, targets)
    return dataclasses.replace(data, train=ts, train_eval=ts)


def hidden_labels(data):
    ts = NoLabels(data.train_eval.images, data.train_eval.targets)
    return dataclasses.replace(data, train=ts, train_eval=ts)


# ---------------------------------------------------------------------------- pixels and PCA


def test_pixels_shape_range_and_pooling(digits) -> None:
    z = compute_embeddings({"kind": "pixels"}, digits)
    assert z.shape == (1347, 64) and z.dtype == np.float32
    assert z.min() == 0.0 and z.max() == 1.0
    expected = digits.train_eval.images.reshape(1347, -1).numpy() / 255.0
    np.testing.assert_allclose(z, expected, atol=1e-6)
    pooled = compute_embeddings({"kind": "pixels", "pool": 2}, digits)
    assert pooled.shape == (1347, 16)
    np.testing.assert_allclose(pooled[:, 0], z[:, [0, 1, 8, 9]].mean(1), atol=1e-6)


def test_pca_shape_and_determinism(digits) -> None:
    a = compute_embeddings({"kind": "pca", "dim": 16}, digits, seed=0)
    b = compute_embeddings({"kind": "pca", "dim": 16}, digits, seed=0)
    assert a.shape == (1347, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.mean(0)).max() < 1e-4  # centred on the train images
    var = a.var(0)
    assert np.all(np.diff(var) <= 1e-6)  # components by decreasing variance
    with pytest.raises(UserError, match="encoder.dim"):
        compute_embeddings({"kind": "pca", "dim": 65}, digits)


def test_float16_storage(digits) -> None:
    z = compute_embeddings({"kind": "pixels", "embed_dtype": "float16"}, digits)
    assert z.dtype == np.float16


@pytest.mark.parametrize("cfg", [{"kind": "pixels"}, {"kind": "pca", "dim": 8}])
def test_label_free_pixels_pca(digits, cfg) -> None:
    ref = compute_embeddings(cfg, digits)
    np.testing.assert_array_equal(compute_embeddings(cfg, shuffled_labels(digits)), ref)
    np.testing.assert_array_equal(compute_embeddings(cfg, hidden_labels(digits)), ref)


# ------------------------------------------------------------------------------------ SimCLR


@pytest.fixture(scope="module")
def simclr_run(digits):
    torch.set_num_threads(1)
    backbone, losses = train_simclr(SIMCLR_FAST, digits, seed=0)
    return backbone, losses


def test_simclr_loss_decreases(simclr_run) -> None:
    _, losses = simclr_run
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert losses[1] < losses[0]


def test_simclr_deterministic_label_free_shape(digits) -> None:
    a = compute_embeddings(SIMCLR_FAST, digits, seed=0)
    assert a.shape == (1347, 32) and a.dtype == np.float32  # small_cnn width 8: 8*4 channels
    assert np.isfinite(a).all() and a.std(0).max() > 0
    # Same seed on a bundle whose labels cannot be read: identical embeddings.
    b = compute_embeddings(SIMCLR_FAST, hidden_labels(digits), seed=0)
    np.testing.assert_array_equal(a, b)
    c = compute_embeddings(SIMCLR_FAST, shuffled_labels(digits), seed=1)
    assert not np.array_equal(a, c)


def test_nt_xent_prefers_matching_pairs() -> None:
    z = torch.randn(16, 8)
    aligned = nt_xent(z, z + 0.01 * torch.randn(16, 8), 0.5)
    random = nt_xent(z, torch.randn(16, 8), 0.5)
    assert aligned < random
    # Lower bound: log(2B - 1) - 2/T ... the loss of perfectly matched unit pairs is well below
    # the uniform log(2B - 1).
    assert aligned < np.log(31)


def test_random_resized_crop_full_scale_is_identity_or_flip() -> None:
    x = torch.rand(6, 1, 8, 8)
    y = random_resized_crop(x, (1.0, 1.0), flip=False, ratio=(1.0, 1.0))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
    y = random_resized_crop(x, (1.0, 1.0), flip=True, ratio=(1.0, 1.0))
    for i in range(6):
        assert torch.allclose(y[i], x[i], atol=1e-5) or torch.allclose(
            y[i], x[i].flip(-1), atol=1e-5
        )


# ------------------------------------------------------------------------------ preprocessing


def test_preprocess_grey_8px_to_rgb_224_bicubic_imagenet(digits) -> None:
    x = digits.train_eval.images[:3]
    y = pretrained_input(x, 224, digits.mean, digits.std)
    assert y.shape == (3, 3, 224, 224) and y.dtype == torch.float32
    ref = T.Compose(
        [
            T.Resize(224, interpolation=T.InterpolationMode.BICUBIC),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    scale = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255  # back to grey levels
    for i in range(3):
        r = ref(Image.fromarray(x[i, 0].numpy()).convert("RGB"))
        diff = ((r - y[i]).abs() * scale).round()  # in grey levels
        assert diff.max() <= 2 and (diff > 0).float().mean() < 0.02  # PIL's bicubic, to rounding
    # File-set batches arrive normalised with the bundle's stats: undone, then the same result.
    xf = (x.float() / 255 - digits.mean[0]) / digits.std[0]
    yf = pretrained_input(xf, 224, digits.mean, digits.std)
    assert ((yf - y).abs() * scale).max() <= 2.01


def test_preprocess_keeps_right_size_and_crops_non_square() -> None:
    x = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8)
    y = pretrained_input(x, 24, (0.5,) * 3, (0.5,) * 3)
    expected = (x.float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(y, expected)
    wide = torch.randint(0, 256, (1, 3, 16, 40), dtype=torch.uint8)
    assert pretrained_input(wide, 32, (0.5,) * 3, (0.5,) * 3).shape == (1, 3, 32, 32)


# ------------------------------------------------------------------------- checkpoint loading


def _images(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _features(model: nn.Module, x: torch.Tensor, size: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(pretrained_input(x, size, (0.5,) * 3, (0.25,) * 3))


def _timm(name="vit_tiny_patch16_224", size=32, **kw):
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=0, img_size=size, **kw).eval()


def _load(cfg: dict) -> nn.Module:
    return build_pretrained_encoder(resolve_options(cfg))


def _noise_like(state: dict) -> dict:
    return {k: torch.randn_like(v.float()) for k, v in state.items()}


def test_dino_plain_and_full_checkpoint_teacher(tmp_path) -> None:
    ref = _timm()
    x = _images()
    want = _features(ref, x, 32)
    sd = ref.state_dict()
    cfg = {"kind": "timm", "name": "vit_tiny_patch16_224", "image_size": 32}

    torch.save(sd, tmp_path / "plain.pth")  # dino_*_pretrain.pth: the bare backbone
    got = _features(_load({**cfg, "weights": str(tmp_path / "plain.pth")}), x, 32)
    torch.testing.assert_close(got, want, rtol=0, atol=0)

    head = {"head.mlp.0.weight": torch.randn(8, 192), "head.last_layer.weight_g": torch.ones(4, 1)}
    full = {
        "teacher": {**{f"backbone.{k}": v for k, v in sd.items()}, **head},
        "student": {f"module.backbone.{k}": v for k, v in _noise_like(sd).items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
        "dino_loss": {"center": torch.zeros(1, 8)},
        "epoch": 100,
        "args": argparse.Namespace(arch="vit_tiny"),  # needs the weights_only=False fallback
    }
    torch.save(full, tmp_path / "full.pth")
    model = build_pretrained_encoder(
        resolve_options({**cfg, "weights": str(tmp_path / "full.pth")})
    )
    torch.testing.assert_close(_features(model, x, 32), want, rtol=0, atol=0)

    # The student on request, with DDP's module. prefix and its head dropped.
    student = _timm()
    report = load_encoder_weights(
        student, tmp_path / "full.pth", "vit_tiny", checkpoint_key="student"
    )
    assert report["source"] == "student" and report["prefixes"] == ["module.", "backbone."]
    assert not torch.equal(student.cls_token, ref.cls_token)


def test_swav_resnet50_gives_2048d_and_drops_random_fc(tmp_path) -> None:
    import torchvision

    torch.manual_seed(0)
    hub = torchvision.models.resnet50(weights=None).eval()  # hub SwAV: random 1000-way fc
    state = {f"module.{k}": v for k, v in hub.state_dict().items()}
    state["module.projection_head.0.weight"] = torch.randn(16, 2048)
    state["module.prototypes.weight"] = torch.randn(30, 16)
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(state, path)

    cfg = yaml.safe_load((CONF_DIR / "swav_resnet50.yaml").read_text())
    model = _load({**cfg, "weights": str(path), "image_size": 64})
    x = _images(2, 32)
    got = _features(model, x, 64)
    assert got.shape == (2, 2048)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    hub.fc = nn.Identity()
    torch.testing.assert_close(got, _features(hub, x, 64), rtol=0, atol=0)


def test_compute_embeddings_pretrained_end_to_end(tmp_path, digits) -> None:
    small = apply_subsets(digits, train_subset=12)
    ref = _timm()
    torch.save({"model": ref.state_dict()}, tmp_path / "vit.pth")
    cfg = {"kind": "timm", "name": "vit_tiny_patch16_224", "image_size": 32, "batch_size": 5}
    z = compute_embeddings({**cfg, "weights": str(tmp_path / "vit.pth")}, hidden_labels(small))
    assert z.shape == (12, 192) and z.dtype == np.float32
    # Grey 8 px digits -> RGB 32 px, ImageNet stats; the same as running the model by hand.
    x = pretrained_input(small.train_eval.images, 32, small.mean, small.std)
    with torch.no_grad():
        want = ref(x).numpy()
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-5)


def test_mocov3_base_encoder_kept_momentum_and_heads_dropped(tmp_path, caplog) -> None:
    ref = _timm()
    x = _images()
    sd = ref.state_dict()
    inner = {f"module.base_encoder.{k}": v for k, v in sd.items()}
    inner.update({f"module.momentum_encoder.{k}": v for k, v in _noise_like(sd).items()})
    inner["module.base_encoder.head.0.weight"] = torch.randn(32, 192)
    inner["module.predictor.0.weight"] = torch.randn(32, 32)
    torch.save({"state_dict": inner, "epoch": 300, "arch": "vit_tiny"}, tmp_path / "moco.pth.tar")
    model = _timm()
    with torch.no_grad():
        model.cls_token.zero_()
    report = load_encoder_weights(model, tmp_path / "moco.pth.tar", "vit_tiny")
    torch.testing.assert_close(_features(model, x, 32), _features(ref, x, 32), rtol=0, atol=0)
    assert report["prefixes"] == ["module.", "base_encoder."]
    dropped = set(report["dropped"])
    assert "head.0.weight" in dropped and "momentum_encoder.cls_token" in dropped
    assert "predictor.0.weight" in dropped and not report["missing"]


def _to_openai_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm CLIP-ViT keys -> the OpenAI release's layout (the inverse of timm's converter)."""
    swaps = [
        ("blocks.", "transformer.resblocks."),
        ("norm1", "ln_1"),
        ("norm2", "ln_2"),
        ("attn.qkv.", "attn.in_proj_"),
        ("attn.proj", "attn.out_proj"),
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
        ("patch_embed.proj", "conv1"),
        ("norm_pre", "ln_pre"),
    ]
    out = {}
    for k, v in state.items():
        if k == "cls_token":
            k, v = "class_embedding", v.reshape(-1)
        elif k == "pos_embed":
            k, v = "positional_embedding", v[0]
        elif k == "head.weight":
            k, v = "proj", v.T.contiguous()
        elif k == "head.bias":
            continue
        elif k.startswith("norm."):
            k = k.replace("norm.", "ln_post.")
        for a, b in swaps:
            k = k.replace(a, b)
        out["visual." + k] = v
    # Text tower: present in the release, never loaded.
    out["transformer.resblocks.0.attn.in_proj_weight"] = torch.randn(48, 16)
    out["token_embedding.weight"] = torch.randn(10, 16)
    out["logit_scale"] = torch.tensor(4.6)
    return out


@pytest.mark.parametrize("proj", [0, 16])
def test_openai_clip_layout_converted(tmp_path, proj) -> None:
    small = {"embed_dim": 64, "depth": 2, "num_heads": 2}
    name = "vit_base_patch16_clip_quickgelu_224"
    ref = _timm(name, 32, **small)
    ref.reset_classifier(16)
    with torch.no_grad():
        ref.head.bias.zero_()  # OpenAI's visual.proj has no bias
    path = tmp_path / "ViT-B-16.pt"
    torch.save(_to_openai_clip(ref.state_dict()), path)
    cfg = {
        "kind": "timm",
        "name": name,
        "image_size": 32,
        "num_classes": proj,
        "model_kwargs": small,
        "weights": str(path),
    }
    model = _load(cfg)
    x = _images()
    if proj == 0:
        ref.reset_classifier(0)
    want = _features(ref, x, 32)
    torch.testing.assert_close(_features(model, x, 32), want, rtol=0, atol=0)
    assert want.shape == (2, proj or 64)


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
def test_torchscript_archive_is_read(tmp_path) -> None:
    scripted = torch.jit.script(nn.Linear(3, 2))
    torch.jit.save(scripted, str(tmp_path / "model.pt"))
    state = read_checkpoint(str(tmp_path / "model.pt"))
    assert set(state) == {"weight", "bias"}


def test_pos_embed_resampled_to_another_image_size(tmp_path) -> None:
    torch.save(_timm(size=224).state_dict(), tmp_path / "dino.pth")
    cfg = {"kind": "timm", "name": "vit_tiny_patch16_224", "image_size": 32}
    model = _load({**cfg, "weights": str(tmp_path / "dino.pth")})
    assert model.pos_embed.shape == (1, 5, 192)


def test_wrong_architecture_is_a_user_error(tmp_path) -> None:
    import timm

    torch.save(
        {"state_dict": timm.create_model("resnet18", num_classes=0).state_dict()},
        tmp_path / "r18.pth",
    )
    cfg = {"kind": "timm", "name": "vit_tiny_patch16_224", "image_size": 32}
    with pytest.raises(UserError) as err:
        _load({**cfg, "weights": str(tmp_path / "r18.pth")})
    msg = str(err.value)
    assert "r18.pth does not fit encoder timm vit_tiny_patch16_224" in msg
    assert "0 of 150 tensors matched" in msg and "expected keys like cls_token" in msg


def test_partial_weights_strict_and_lenient(tmp_path) -> None:
    sd = _timm().state_dict()
    del sd["norm.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    cfg = {"kind": "timm", "name": "vit_tiny_patch16_224", "image_size": 32}
    with pytest.raises(UserError, match=r"leaves 1 of 150 tensors .*norm\.weight.*strict=false"):
        _load({**cfg, "weights": str(tmp_path / "partial.pth")})
    _load({**cfg, "weights": str(tmp_path / "partial.pth"), "strict": False})


# ------------------------------------------------------------------------------ config errors


@pytest.mark.parametrize("missing", ["???", None, ""])
def test_missing_weights_asks_for_encoder_weights(digits, missing) -> None:
    cfg = yaml.safe_load((CONF_DIR / "dino_vitb16.yaml").read_text())
    assert cfg["weights"] == "???"
    cfg["weights"] = missing
    with pytest.raises(UserError, match=r"pass encoder\.weights=/path/to/file") as err:
        compute_embeddings(cfg, digits)
    assert "dino_vitbase16_pretrain.pth" in str(err.value)


def test_missing_weights_from_omegaconf(digits) -> None:
    cfg = OmegaConf.load(CONF_DIR / "swav_resnet50.yaml")
    with pytest.raises(UserError, match=r"encoder\.weights="):
        compute_embeddings(cfg, digits)
    with pytest.raises(UserError, match=r"encoder\.weights="):
        compute_embeddings(OmegaConf.to_container(cfg), digits)


def test_unknown_kind_and_option(digits) -> None:
    with pytest.raises(UserError, match="encoder.kind must be one of"):
        compute_embeddings({"kind": "dinov9"}, digits)
    with pytest.raises(UserError, match="has no option encoder.dimm"):
        compute_embeddings({"kind": "pca", "dimm": 3}, digits)


def test_missing_file_is_a_user_error(digits, tmp_path) -> None:
    cfg = {"kind": "torchvision", "name": "resnet18", "weights": str(tmp_path / "nope.pth")}
    with pytest.raises(UserError, match="encoder weights file not found"):
        compute_embeddings(cfg, digits)


def test_every_config_file_resolves() -> None:
    names = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
    expected = {"pixels", "pca", "simclr", "dino_vits16", "dino_vitb16", "dino_resnet50"}
    expected |= {"swav_resnet50", "mocov3_vitb16", "clip_vitb16"}
    assert expected <= set(names)
    for name in names:
        text = (CONF_DIR / f"{name}.yaml").read_text()
        assert text.startswith("# "), name
        cfg = OmegaConf.to_container(OmegaConf.create(text), throw_on_missing=False)
        opts = resolve_options(cfg)
        assert opts["kind"] in KINDS
        if opts["kind"] in ("timm", "torchvision"):
            assert cfg["weights"] == "???", name
            assert opts["release"] and opts["release"].split(": ")[-1] in text.splitlines()[0]
    simclr = yaml.safe_load((CONF_DIR / "simclr.yaml").read_text())
    assert simclr["temperature"] == 0.5 and simclr["backbone"] == "small_cnn"
    for key, value in SIMCLR_DEFAULTS.items():  # the file and the code agree
        assert simclr[key] == (list(value) if isinstance(value, tuple) else value), key


def test_extract_writes_straight_into_a_memory_mapped_file(tmp_path):
    from coreset_lab.embedding import extract

    data = build_dataset("digits")
    flat = torch.nn.Flatten()
    in_memory = extract(flat, data.train_eval, batch_size=100, device="cpu")
    on_disk = extract(
        flat, data.train_eval, batch_size=100, device="cpu", out_path=tmp_path / "z.npy"
    )
    assert isinstance(on_disk, np.memmap)
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), in_memory)


def test_auto_workers_decode_image_files_in_parallel_but_not_in_memory_tensors(tmp_path):
    from coreset_lab.data import FileImageSet
    from coreset_lab.embedding.extract import loader_workers

    assert loader_workers("auto", build_dataset("digits").train_eval) == 0
    assert loader_workers("auto", FileImageSet([("a.png", 0)], None)) >= 1
    assert loader_workers(3, FileImageSet([("a.png", 0)], None)) == 3
