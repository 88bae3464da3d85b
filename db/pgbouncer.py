"""A local PgBouncer in transaction pool mode in front of a Postgres: Supabase's pooler, offline.

Supabase's transaction pooler (port 6543) hands a server connection to a client for one
transaction and gives it to another client afterwards. Anything that lives on a session
(session advisory locks, SET outside a transaction, protocol-level prepared statements,
LISTEN, temporary tables, cursors WITH HOLD) then leaks to, or is missing for, the next
client. Running the application through this PgBouncer (Debian's package; 1.18 has no
prepared-statement support at all) makes those mistakes fail in tests instead of in
production. Used by the pooled tests (tests/fixtures/pooler.py) and the pooled soak.

Loopback only, on a free port; the config, the password file and the log live in one folder.
When we are root the process runs as the service account the embedded Postgres uses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class PgBouncerError(RuntimeError):
    """PgBouncer is missing or did not start; the message says why."""


def find_pgbouncer() -> str | None:
    """The pgbouncer binary ($PGBOUNCER, PATH, Debian's /usr/sbin), or None."""
    explicit = os.environ.get("PGBOUNCER")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).exists()), None)


@dataclass
class PgBouncer:
    """One PgBouncer in `root` forwarding every database to 127.0.0.1:`server_port`."""

    root: Path
    port: int
    server_port: int
    users: dict[str, str]  # name -> password (clients authenticate with SCRAM)
    pool_size: int = 8  # server connections per (database, user), like Supabase's "Pool Size"
    max_client_conn: int = 200  # Supabase Nano/Micro: 200 pooler clients
    run_as: tuple[int, int] | None = None  # (uid, gid) when started as root
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def logfile(self) -> Path:
        return self.root / "pgbouncer.log"

    def url(self, user: str, database: str) -> str:
        return f"postgresql://{user}:{self.users[user]}@127.0.0.1:{self.port}/{database}"

    def _write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        userlist = self.root / "userlist.txt"
        userlist.write_text("".join(f'"{u}" "{p}"\n' for u, p in self.users.items()), encoding="utf-8")
        conf = self.root / "pgbouncer.ini"
        conf.write_text("\n".join([
            "[databases]",
            f"* = host=127.0.0.1 port={self.server_port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = scram-sha-256",
            f"auth_file = {userlist}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            f"max_client_conn = {self.max_client_conn}",
            # A transaction-mode pooler never resets a server connection between clients:
            # what one client leaves on a session, the next one inherits.
            "server_reset_query =",
            "ignore_startup_parameters = extra_float_digits",
            "query_wait_timeout = 60",
            f"logfile = {self.logfile}",
            f"pidfile = {self.root / 'pgbouncer.pid'}",
            "",
        ]), encoding="utf-8")
        if self.run_as is not None:
            for path in (self.root, userlist, conf):
                os.chown(path, *self.run_as)
            os.chmod(userlist, 0o600)
        return conf

    def start(self, timeout_s: float = 15.0) -> None:
        binary = find_pgbouncer()
        if binary is None:
            raise PgBouncerError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
        conf = self._write_config()
        kwargs: dict[str, object] = {}
        if self.run_as is not None:
            kwargs = {"user": self.run_as[0], "group": self.run_as[1], "extra_groups": []}
        self._proc = subprocess.Popen(  # type: ignore[call-overload]
            [binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(self.root), **kwargs)
        deadline = time.monotonic() + timeout_s
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else "")
                raise PgBouncerError(f"pgbouncer exited ({self._proc.returncode}): {err.strip()}{self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PgBouncerError(f"pgbouncer did not listen on {self.port}{self._log_tail()}") from None
                time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return "\n" + "\n".join(self.logfile.read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
