"""Money: integer minor units (parsing and formatting), the Collections rules, fees and
decline reasons fetched off the hot path, and the accountant's CSV export."""
