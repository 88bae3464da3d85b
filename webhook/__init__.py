"""The webhook sidecar: the only process on the public internet."""
