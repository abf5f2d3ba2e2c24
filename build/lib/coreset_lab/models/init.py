from torch import nn


def init_conv_bn(module: nn.Module) -> None:
    """He (fan-out) init for convolutions, identity for batch norms: the ResNet convention."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
