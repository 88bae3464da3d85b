"""Owner-edited settings and the secrets behind them: what exists, defaults, environment
overrides, encryption at rest and key rotation, and the pure checks behind Settings."""
