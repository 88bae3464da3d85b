"""Data layer: where the database is (config), migrations, the connection pool and the
named queries, by domain. It imports nothing of ours: callers hand it plain data."""
