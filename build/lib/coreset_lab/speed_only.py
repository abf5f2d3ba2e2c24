"""Trainer options that do not change what a model learns (a leaf module: artifact keys and
method identities both read it, and neither may pull the other's imports into its code hash)."""

# Where, how fast or how visibly a model trains, not what it learns (the engines compute the same
# numbers, see training/fast.py). The device and precision they resolve to are keyed separately.
SPEED_ONLY = frozenset(
    {
        "engine",
        "compile",
        "channels_last",
        "accelerator",
        "devices",
        "strategy",
        "num_workers",
        "progress",
        "checkpoint_every_steps",
    }
)
