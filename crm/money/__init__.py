"""Money: integer minor units (parsing and formatting), the Collections rules, fees and
decline reasons fetched off the hot path, the accountant's CSV export, and an owner's refunds
(refunds.py)."""
