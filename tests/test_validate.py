"""Which protocol, scorer and selector combinations run: every one is either refused before any
work by coreset_lab/run/checks.py, or accepted and then runs (a few unusual ones end to end)."""

import pytest
from omegaconf import OmegaConf, open_dict

from coreset_lab.errors import UserError
from coreset_lab.protocols import PROTOCOLS
from coreset_lab.run.checks import check_config
from coreset_lab.run.config import compose_config
from coreset_lab.scoring import SCORERS
from coreset_lab.selection import SELECTORS

# What a protocol gives a scorer and a selector (`Scorer.needs`, `Selector.needs`), written out
# here independently of each protocol's declared `provides`, which it must match.
PROVIDES = {
    "fitting": {"dynamics", "logits", "probs", "features"},
    "elfs": {"dynamics", "logits", "probs", "features", "embeddings"},
    # held-out models: probabilities and per-epoch predictions, not logits; and a model at all
    "unseen": {"dynamics", "probs"},
    "full": None,  # reads neither scorer nor selector: anything goes
    # chooses its samples itself: it gives nothing, and takes only the random scorer and selector
    "badge": set(),
}


def _target(cls) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def _accepted(protocol: str, scorer_cls, selector_cls) -> bool:
    given = PROVIDES[protocol]
    if given is None:
        return True
    needs = set(scorer_cls.needs) | set(selector_cls.needs)
    if protocol == "unseen" and not scorer_cls.needs:
        return False  # nothing to hold out
    if protocol == "badge":  # it would ignore any other scorer or selector
        return scorer_cls.name == "random" and selector_cls.name == "random"
    return needs <= given


def test_each_protocol_declares_what_it_provides():
    declared = {name: cls.provides if cls.selects else None for name, cls in PROTOCOLS.items()}
    assert declared == PROVIDES


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_every_combination_is_refused_or_accepted_by_what_the_protocol_provides(protocol):
    cfg, _ = compose_config(["logger=none", f"protocol={protocol}", "selector.prune_rate=0.5"])
    refused = []
    for scorer_name, scorer_cls in SCORERS.items():
        for selector_name, selector_cls in SELECTORS.items():
            with open_dict(cfg):
                cfg.scorer = OmegaConf.create({"_target_": _target(scorer_cls)})
                cfg.selector = OmegaConf.create(
                    {"_target_": _target(selector_cls), "prune_rate": 0.5}
                )
            try:
                check_config(cfg)
            except UserError:
                refused.append((scorer_name, selector_name))
    expected = [
        (s, t)
        for s, s_cls in SCORERS.items()
        for t, t_cls in SELECTORS.items()
        if not _accepted(protocol, s_cls, t_cls)
    ]
    assert refused == expected


RUNS = [
    ["protocol=unseen", "scorer=margin", "selector=ccs", "protocol.folds=2"],
    ["protocol=unseen", "scorer=aum", "selector=double_end", "protocol.folds=2"],
    ["protocol=elfs", "scorer=margin", "selector=topk", "protocol.search_iterations=5"],
    ["protocol=elfs", "selector=ccs", "protocol.search_iterations=5"],
]


@pytest.mark.parametrize("overrides", RUNS, ids=[" ".join(r[:3]) for r in RUNS])
def test_unusual_accepted_combinations_run(make_cfg, overrides):
    from coreset_lab.run.pipeline import run

    fast = ["trainer=debug", "trainer.proxy_epochs=2", "trainer.target_iterations=5"]
    cfg, choices = make_cfg(*fast, "clustering.n_init=1", *overrides)
    result = run(cfg, choices)
    assert result["status"] == "ok" and result["coreset_size"] > 0
