"""Every paper-table experiment composes for each of its methods and runs end to end on the
bundled digits with the debug recipe (how CI exercises configs meant for CIFAR and ImageNet), and
every job of every sweep computes what its label says."""

import itertools
from collections import defaultdict
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from coreset_lab.run.config import CONF_DIR, compose_config
from coreset_lab.run.identity import identify
from coreset_lab.run.pipeline import run

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
ON_DIGITS = [
    "dataset=digits",
    "model=small_cnn",
    "trainer=debug",
    "encoder=pca",
    "trainer.proxy_epochs=2",
    "trainer.target_iterations=5",
]
# Windows of recorded epochs that fit the two proxy epochs above.
SHORT_WINDOWS = {
    "tdds": ["scorer.trajectory_len=2", "scorer.window=2"],
    "dynunc": ["scorer.window=2"],
}
# Seconds-sized options of whichever protocol a method runs (each protocol takes its own only).
FAST_PROTOCOL = {
    "unseen": ["protocol.folds=2"],
    "elfs": ["protocol.search_iterations=5"],
    "badge": ["protocol.rounds=2"],
}
# Seconds-sized clustering for whichever method an experiment sets (ELFS tables: TEMI).
FAST_CLUSTERING = {
    "kmeans": ["clustering.n_init=1"],
    "temi": [
        "clustering.epochs=2",
        "clustering.warmup_epochs=1",
        "clustering.num_heads=2",
        "clustering.precision=32-true",
    ],
}


def test_there_is_a_table_per_paper_dataset():
    assert {
        "elfs_cifar10",
        "elfs_cifar100",
        "elfs_stl10",
        "elfs_imagenet",
        "unseen_cifar10",
        "unseen_cifar10_baselines",
        "unseen_cifar100",
        "unseen_cifar100_baselines",
        "unseen_imagenet",
        "unseen_imagenet_baselines",
        "fmnist_fitting",
    } <= set(EXPERIMENTS)


# Tables whose methods and recipe shape are those of their CIFAR-10 sibling (only the dataset,
# its classes and sizes differ, and digits replaces them here): end to end in the slow tier.
SIBLINGS = {"elfs_cifar100", "elfs_imagenet", "elfs_stl10", "unseen_cifar100", "unseen_imagenet",
            "unseen_cifar100_baselines", "unseen_imagenet_baselines"}  # fmt: skip


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SIBLINGS else n for n in EXPERIMENTS]
)
def test_experiment_runs_on_digits_for_each_method(make_cfg, name):
    cfg, choices = make_cfg(f"experiment={name}", *ON_DIGITS)
    params = HydraConfig.get().sweeper.params or {}
    clustering = FAST_CLUSTERING.get(str(cfg.clustering.method), [])
    # the swept methods, or the one the experiment sets (a regime alone: its default method)
    methods = [m.strip() for m in str(params.get("method", choices["method"])).split(",")]
    rate = str(params.get("selector.prune_rate", cfg.selector.prune_rate)).split(",")[-1]
    for method in methods:
        tdds = SHORT_WINDOWS.get(method, [])
        preset = [] if method == "None" else [f"method={method}"]
        job = [f"experiment={name}", *ON_DIGITS, *clustering, *preset, *tdds]
        job.append(f"selector.prune_rate={rate}")
        _, choices = make_cfg(*job)
        cfg, choices = make_cfg(*job, *FAST_PROTOCOL.get(choices["protocol"], []))
        result = run(cfg, choices)
        assert result["status"] == "ok"
        if cfg.evaluate:
            assert 0 <= result["test_accuracy"] <= 1
        else:  # a selection-only table (scores only)
            assert result["test_accuracy"] is None and result["coreset_size"] > 0
        assert result["paper"] == cfg.paper
        ident = identify(cfg, choices)
        assert (result["method"], result["method_id"]) == (ident.label, ident.method_id)
        assert result["cell_id"] == ident.cell_id and result["identity"] == ident.identity


# --- every job of every sweep ----------------------------------------------------------------

# What each method preset computes: (scorer, selector, protocol) as config-group choices (None:
# not read), and the label its rows must carry. Presets that take the run's scorer say "{scorer}".
PRESETS = {
    "random": (None, "random", None, "random"),
    "full": (None, None, "full", "full"),
    "el2n": ("el2n", "topk", "fitting", "el2n"),
    "aum": ("aum", "topk", "fitting", "aum"),
    "forgetting": ("forgetting", "topk", "fitting", "forgetting"),
    "margin": ("margin", "topk", "fitting", "margin"),
    "entropy": ("entropy", "topk", "fitting", "entropy"),
    "least_confidence": ("least_confidence", "topk", "fitting", "least_confidence"),
    "tdds": ("tdds", "topk", "fitting", "tdds"),
    "grand": ("grand", "topk", "fitting", "grand"),
    "dynunc": ("dynunc", "topk", "fitting", "dynunc"),
    "kcenter": ("random", "kcenter", "elfs", "kcenter[{encoder}]"),
    "moderate": ("median_distance", "moderate", "elfs", "moderate[{encoder}]"),
    "ccs": ("aum", "ccs", "fitting", "ccs"),
    "badge": ("random", "random", "badge", "badge"),
    "elfs": ("aum", "double_end", "elfs", "elfs[{encoder}]"),
    "d2": ("prototypicality", "d2", "elfs", "d2[{encoder}]"),
    "prototypicality": ("prototypicality", "topk", "elfs", "prototypicality[{encoder}]"),
    "fitting": ("{scorer}", "topk", "fitting", "{scorer}"),
    "unseen_holdout": ("{scorer}", "topk", "unseen", "unseen-s1-{scorer}"),
    "unseen_incremental": ("{scorer}", "topk", "unseen", "unseen-s4-{scorer}"),
}


def sweep_axes(name: str) -> tuple[list[list[str]], list[list[tuple[str, object]]]]:
    """The experiment's sweep as Hydra's basic sweeper expands it: config-group axes (overrides
    to compose) and value axes ((key, typed value) to set on the composed config)."""
    _, choices = compose_config([f"experiment={name}"])
    params = HydraConfig.get().sweeper.params or {}
    parser = OverridesParser.create()
    groups, values = [], []
    for override in parser.parse_overrides([f"{k}={v}" for k, v in params.items()]):
        key = override.get_key_element()
        sweep = override.is_sweep_override()  # `method: elfs` is one value, not a sweep
        items = list(override.sweep_string_iterator()) if sweep else [override.get_value_string()]
        if key in choices:
            groups.append([f"{key}={v}" for v in items])
        else:
            values.append([(key, parser.parse_override(f"k={v}").value()) for v in items])
    return groups, values


def sweep_jobs(name: str):
    """(config, group choices) of every job: each group combination composed by Hydra, each
    value combination (prune rate, seed) then set on it, as Hydra would override it. The config
    is reused from job to job: use it before asking for the next."""
    groups, values = sweep_axes(name)
    for combo in itertools.product(*groups):
        cfg, choices = compose_config([f"experiment={name}", *combo])
        for assignment in itertools.product(*values):
            for key, value in assignment:  # every value key is set for every job: no leftovers
                OmegaConf.update(cfg, key, value)
            yield cfg, choices


def _expected(cfg, choices: dict) -> tuple[tuple, str]:
    scorer, selector, protocol, label = PRESETS[choices["method"]]
    fill = {"scorer": choices["scorer"], "encoder": choices["encoder"]}
    scorer = scorer and scorer.format(**fill)
    if choices.get("clustering") == "oracle" and protocol == "elfs":  # the diagnostic's mark
        label = label.replace("[", f"-oracle{cfg.clustering.noise:g}[")
    if protocol == "unseen" and cfg.protocol.class_aware:
        label += "-classaware"
    return (scorer, selector, protocol), label.format(**fill)


def _resolved(choices: dict, expected: tuple) -> tuple:
    """The job's own choices, where the preset reads them (None where it does not)."""
    keys = ("scorer", "selector", "protocol")
    return tuple(
        None if want is None else choices[k] for k, want in zip(keys, expected, strict=True)
    )


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_job_computes_what_its_label_says(name):
    cells = defaultdict(set)
    for cfg, choices in sweep_jobs(name):
        if choices["method"] is None:  # a regime without a sweep (experiment=fmnist_claims)
            assert not HydraConfig.get().sweeper.params, name
            continue
        expected, label = _expected(cfg, choices)
        assert _resolved(choices, expected) == expected, (name, choices["method"], choices)
        ident = identify(cfg, choices)
        assert ident.label == label, (name, choices["method"], choices)
        rate = 0.0 if label == "full" else float(cfg.selector.prune_rate)
        cells[(ident.label, rate, int(cfg.seed))].add(ident.method_id)
    shared = {k: ids for k, ids in cells.items() if len(ids) > 1}
    assert not shared, f"{name}: one label, several computations: {shared}"
