"""Helpers the dashboard pages share: session handling and role gates."""
