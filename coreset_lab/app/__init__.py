"""The faces: the command line, the Python API and the sweep summary (never in a code hash)."""
