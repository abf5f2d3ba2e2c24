"""Model zoo: small CNN, CIFAR-style ResNets, torchvision ResNets and any timm model."""

from .factory import KNOWN_ARCHS, build_model, load_local_weights

__all__ = ["KNOWN_ARCHS", "build_model", "load_local_weights"]
