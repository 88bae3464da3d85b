"""Dashboard users: login and sessions, password hashing, and what an owner does to users."""
