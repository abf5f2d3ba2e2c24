"""Protocols compose the stages: how scores are obtained and which labels anything may read.

Each protocol is one class that registers itself (`registered("protocol")`) and is built from
its config node, conf/protocol/<name>.yaml, by `_target_`."""

from __future__ import annotations

from coreset_lab.protocols.base import Protocol, Selection
from coreset_lab.protocols.elfs import Elfs
from coreset_lab.protocols.fitting import Fitting
from coreset_lab.protocols.full import Full
from coreset_lab.protocols.unseen import Unseen
from coreset_lab.registry import import_all, registered

import_all("coreset_lab.protocols")  # a new protocol module registers without being listed here
PROTOCOLS: dict[str, type[Protocol]] = registered("protocol")

__all__ = ["PROTOCOLS", "Elfs", "Fitting", "Full", "Protocol", "Selection", "Unseen"]
