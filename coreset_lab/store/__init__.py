"""The content-addressed artifact store and the fingerprints its keys are made of."""
