"""What protocols use: the run context (data, seed, models, ledger) and evaluation."""
