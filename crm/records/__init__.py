"""What staff type in and change by hand: customers, jobs, draft invoices and their lines.

The pages call these for every change (never the db/ write modules: a contract in
pyproject.toml and tests/test_layers.py); each opens one transaction, so a change and its
audit row commit together. The rows are written by the named queries in db/.
"""
