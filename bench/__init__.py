"""Benchmarks (issue 7): `python -m bench` loads synthetic data into a throwaway Postgres,
measures the webhook sidecar, the dashboard's data, reminder queueing and Send via Stripe,
prints the tables and rewrites docs/PERFORMANCE.md. They report; they assert nothing about time.
"""
