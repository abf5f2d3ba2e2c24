"""coreset-lab: dataset pruning and label-free coreset selection."""

__version__ = "0.1.0"
