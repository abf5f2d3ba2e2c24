"""One run: compose the config, check it, derive its identity, run it, write its run directory."""
