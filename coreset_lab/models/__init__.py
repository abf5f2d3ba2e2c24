"""Model zoo: small CNN, CIFAR-style ResNets, torchvision ResNets and any timm model."""

from coreset_lab.registry import import_all

from .factory import KNOWN_ARCHS, build_model, load_local_weights

import_all("coreset_lab.models")  # every arch registers where it is defined

__all__ = ["KNOWN_ARCHS", "build_model", "load_local_weights"]
