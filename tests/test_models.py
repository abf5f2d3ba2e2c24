"""Model zoo: output shapes, CIFAR-ResNet structure, local weight loading and config errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from coreset_lab.errors import UserError
from coreset_lab.models import KNOWN_ARCHS, build_model
from coreset_lab.run.config import CONF_DIR as CONF

CONF_DIR = Path(CONF) / "model"


def _logits(model: nn.Module, batch: int, channels: int, size: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.randn(batch, channels, size, size))


@pytest.mark.parametrize(
    "in_channels,size,width",
    [(1, 8, 32), (1, 28, 32), (3, 32, 32), (1, 28, 16), (3, 7, 8)],
)
def test_small_cnn_shapes(in_channels: int, size: int, width: int) -> None:
    model = build_model("small_cnn", 10, in_channels, size, width=width, depth=3)
    assert _logits(model, 4, in_channels, size).shape == (4, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [width, 2 * width, 4 * width]


def test_small_cnn_never_pools_below_one_pixel() -> None:
    model = build_model("small_cnn", 10, 1, 8, depth=5)
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3  # 8 -> 4 -> 2 -> 1, then no more pooling
    assert _logits(model, 2, 1, 8).shape == (2, 10)
    # Trains in mode train() with a batch of 2 (BN needs > 1 value per channel after pooling).
    model.train()
    model(torch.randn(2, 1, 8, 8)).sum().backward()


@pytest.mark.parametrize("arch", ["cifar_resnet18", "cifar_resnet34"])
@pytest.mark.parametrize("in_channels,size", [(3, 32), (1, 28)])
def test_cifar_resnet_shapes(arch: str, in_channels: int, size: int) -> None:
    model = build_model(arch, 100, in_channels, size, width=8)
    assert _logits(model, 2, in_channels, size).shape == (2, 100)


def test_cifar_resnet_structure_and_param_count() -> None:
    model = build_model("cifar_resnet18", 10)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    stem = model.conv1
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.in_channels == 3
    widths = [
        stage[0].conv1.out_channels
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4)
    ]
    assert widths == [64, 128, 256, 512]
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3, model.layer4)] == [2] * 4
    r34 = build_model("cifar_resnet34", 10)
    assert [len(s) for s in (r34.layer1, r34.layer2, r34.layer3, r34.layer4)] == [3, 4, 6, 3]
    assert build_model("cifar_resnet18", 10, in_channels=1).conv1.in_channels == 1
    # 32x32 input -> 4x4 feature map before the global pool (stride 8 overall).
    feats = model.layer4(
        model.layer3(model.layer2(model.layer1(model.conv1(torch.randn(1, 3, 32, 32)))))
    )
    assert feats.shape[-2:] == (4, 4)


@pytest.mark.parametrize(
    "arch,in_channels,size", [("resnet18", 3, 64), ("resnet18", 1, 64), ("resnet34", 3, 64)]
)
def test_torchvision_resnets(arch: str, in_channels: int, size: int) -> None:
    model = build_model(arch, 7, in_channels, size)
    assert model.conv1.in_channels == in_channels
    assert _logits(model, 2, in_channels, size).shape == (2, 7)


def test_torchvision_resnet50_builds() -> None:
    model = build_model("resnet50", 5, 3, 64)
    assert model.fc.out_features == 5
    assert _logits(model, 2, 3, 64).shape == (2, 5)


@pytest.mark.parametrize(
    "name,in_channels,size",
    [("resnet18", 3, 32), ("resnet18", 1, 28), ("vit_tiny_patch16_224", 3, 32)],
)
def test_timm_shapes(name: str, in_channels: int, size: int) -> None:
    model = build_model("timm", 10, in_channels, size, name=name)
    assert _logits(model, 2, in_channels, size).shape == (2, 10)


def test_timm_passes_extra_kwargs() -> None:
    model = build_model("timm", 3, 3, 32, name="vit_tiny_patch16_224", patch_size=8, depth=2)
    assert len(model.blocks) == 2
    assert _logits(model, 2, 3, 32).shape == (2, 3)


def test_timm_local_weights_reproduce_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = build_model("timm", 10, 3, 32, name="resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    torch.manual_seed(1)
    fresh = build_model("timm", 10, 3, 32, name="resnet18")
    loaded = build_model("timm", 10, 3, 32, name="resnet18", weights=str(path))
    x = torch.randn(2, 3, 32, 32)
    src.eval(), fresh.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(src(x), loaded(x))
        assert not torch.allclose(src(x), fresh(x))


def test_local_weights_wrapped_and_prefixed_checkpoint(tmp_path: Path) -> None:
    src = build_model("cifar_resnet18", 10, width=8)
    path = tmp_path / "ckpt.pt"
    torch.save(
        {"epoch": 3, "state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, path
    )
    loaded = build_model("cifar_resnet18", 10, width=8, weights=path)
    x = torch.randn(2, 3, 16, 16)
    src.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(src(x), loaded(x))


def test_local_weights_report_head_mismatch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = build_model("timm", 1000, 3, 32, name="resnet18")
    sd = src.state_dict()
    sd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "in1k.pth"
    torch.save(sd, path)
    with caplog.at_level(logging.WARNING, logger="coreset_lab.models.factory"):
        model = build_model("timm", 10, 3, 32, name="resnet18", weights=str(path))
    assert torch.equal(model.conv1.weight, src.conv1.weight)
    assert model.fc.out_features == 10
    text = caplog.text
    assert "shape mismatch" in text and "fc.weight" in text
    assert "unexpected" in text and "extra.weight" in text


def test_local_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        build_model("small_cnn", 10, 1, 8, weights=str(tmp_path / "nope.pth"))
    path = tmp_path / "other.pth"
    torch.save({"a.weight": torch.zeros(3)}, path)
    with pytest.raises(UserError, match="none of its"):
        build_model("small_cnn", 10, 1, 8, weights=str(path))


def test_user_errors() -> None:
    with pytest.raises(UserError, match="known: .*cifar_resnet18"):
        build_model("resnet9000", 10)
    with pytest.raises(UserError, match="wdith"):
        build_model("small_cnn", 10, wdith=3)
    with pytest.raises(UserError, match="width"):
        build_model("cifar_resnet18", 10, width=0)
    with pytest.raises(UserError, match="depth"):
        build_model("small_cnn", 10, depth="3")
    with pytest.raises(UserError, match="does not take"):
        build_model("resnet18", 10, width=32)
    with pytest.raises(UserError, match="timm does not know"):
        build_model("timm", 10, name="resnet18x_not_a_model")
    with pytest.raises(UserError, match="needs a timm model name"):
        build_model("timm", 10)
    with pytest.raises(UserError, match="pretrained"):
        build_model("timm", 10, name="resnet18", pretrained=True)
    with pytest.raises(UserError, match="bogus_kwarg"):
        build_model("timm", 10, name="resnet18", bogus_kwarg=1)
    with pytest.raises(UserError, match="num_classes"):
        build_model("small_cnn", 0)


def test_model_configs_build() -> None:
    files = sorted(CONF_DIR.glob("*.yaml"))
    names = {f.stem for f in files}
    assert {
        "small_cnn",
        "cifar_resnet18",
        "cifar_resnet34",
        "resnet18",
        "resnet34",
        "resnet50",
        "timm",
    } <= names
    for f in files:
        cfg = yaml.safe_load(f.read_text())
        assert set(cfg) == {"arch", "kwargs"}, f
        assert cfg["arch"] in KNOWN_ARCHS, f
        if cfg["arch"] in ("small_cnn", "timm"):
            model = build_model(cfg["arch"], 10, 1, 28, **cfg["kwargs"])
            assert _logits(model, 2, 1, 28).shape == (2, 10)
    assert yaml.safe_load((CONF_DIR / "small_cnn.yaml").read_text())["kwargs"] == {
        "width": 32,
        "depth": 3,
    }
