#!/usr/bin/env python
"""Fitting vs UNSEEN scores of one scorer for two seeds: histograms (PNG) and the seed-to-seed
Pearson correlation of per-sample score ranks (JSON), as in the UNSEEN paper's Figure 1.

    python scripts/score_stability.py scorer=margin dataset=digits trainer=debug --out DIR
    python scripts/score_stability.py scorer=aum protocol.folds=5 --seeds 0 1 --out DIR

Positional arguments are coreset-lab's Hydra overrides; models come from (and go to) the shared
artifact store (paths.store_dir). See coreset_lab/diagnostics/stability.py.
"""

from __future__ import annotations

import sys

from coreset_lab.diagnostics.stability import main

if __name__ == "__main__":
    sys.exit(main())
