"""Protocols compose the stages: how scores are obtained and which labels anything may read."""

from __future__ import annotations

from coreset_lab.errors import UserError
from coreset_lab.protocols.base import Selection
from coreset_lab.protocols.elfs import elfs
from coreset_lab.protocols.fitting import fitting
from coreset_lab.protocols.full import full
from coreset_lab.protocols.unseen import unseen

PROTOCOLS = {"fitting": fitting, "full": full, "unseen": unseen, "elfs": elfs}


def get_protocol(name: str):
    if name not in PROTOCOLS:
        raise UserError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


__all__ = ["PROTOCOLS", "Selection", "get_protocol"]
