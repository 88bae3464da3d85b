"""The driver's names the core may use without importing the driver.

crm/ runs no SQL, so it does not import psycopg (a contract in pyproject.toml): it passes
connections to the named queries in db/ and catches the errors named here.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.errors import LockNotAvailable

Conn = psycopg.Connection[Any]
DatabaseError = psycopg.Error
OperationalError = psycopg.OperationalError

__all__ = ["Conn", "DatabaseError", "LockNotAvailable", "OperationalError"]
