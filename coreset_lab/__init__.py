"""coreset-lab: dataset pruning and label-free coreset selection.

`coreset_lab.select(data, method="elfs", prune_rate=0.9, **overrides)` runs the CLI's pipeline
from Python (coreset_lab/app/api.py).
"""

__version__ = "0.1.0"
__all__ = ["Coreset", "select"]


def __getattr__(name: str):
    # Imported on first use: `import coreset_lab` stays light (no Hydra, torch or data loaders).
    if name in __all__:
        from coreset_lab.app import api

        return getattr(api, name)
    raise AttributeError(f"module 'coreset_lab' has no attribute {name!r}")
