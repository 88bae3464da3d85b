"""Data layer: migrations, the connection pool and the named queries, by domain."""
