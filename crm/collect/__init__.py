"""Collecting on site (the Collect screen): what the screen says about a payment (state.py) and
the card it was paid with (card.py)."""
