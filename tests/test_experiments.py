"""Every paper-table experiment composes for each of its methods and runs end to end on the
bundled digits with the debug recipe (how CI exercises configs meant for CIFAR and ImageNet)."""

from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig

from coreset_lab.cli import CONF_DIR
from coreset_lab.pipeline import run

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
ON_DIGITS = [
    "dataset=digits",
    "model=small_cnn",
    "trainer=debug",
    "encoder=pca",
    "trainer.proxy_epochs=2",
    "trainer.target_iterations=5",
    "++elfs.search_iterations=5",
    "++unseen.folds=2",
    "clustering.n_init=1",
]


def test_there_is_a_table_per_paper_dataset():
    assert {
        "elfs_cifar10",
        "elfs_cifar100",
        "elfs_stl10",
        "elfs_imagenet",
        "unseen_cifar10",
        "unseen_cifar100",
        "unseen_imagenet",
        "fmnist_fitting",
    } <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_on_digits_for_each_method(make_cfg, name):
    cfg, _ = make_cfg(f"experiment={name}", *ON_DIGITS)
    params = HydraConfig.get().sweeper.params
    methods = [m.strip() for m in str(params["method"]).split(",")]
    rate = str(params["selector.prune_rate"]).split(",")[-1]
    for method in methods:
        tdds = ["scorer.trajectory_len=2", "scorer.window=2"] if method == "tdds" else []
        cfg, choices = make_cfg(
            f"experiment={name}",
            *ON_DIGITS,
            f"method={method}",
            f"selector.prune_rate={rate}",
            *tdds,
        )
        result = run(cfg, choices)
        assert result["status"] == "ok" and 0 <= result["test_accuracy"] <= 1
        assert result["paper"] == cfg.paper
