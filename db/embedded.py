"""A local Postgres server in a folder of our own: the default when DATABASE_URL is unset.

Owns finding server binaries (Debian's packages when present, so pg_cron can be
preloaded; otherwise the ones the `pgserver` wheel ships), creating the cluster,
starting and stopping it. Used by the run command (data under ./.data/pg, kept across
restarts) and by the test harness (a throwaway cluster per test session).

Postgres refuses to run as root, so when we are root the cluster belongs to an
unprivileged system user and every server command runs as that user.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB_NAME = "crm"
DEFAULT_SUPERUSER = "postgres"
SERVICE_ACCOUNT = "crmpg"


class EmbeddedPostgresError(RuntimeError):
    """The local server could not be created or started; the message says why."""


def find_bindir() -> Path:
    """Server binaries: $PG_BINDIR, else the newest Debian install, else pgserver's."""
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    try:
        import pgserver  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise EmbeddedPostgresError(
            "no Postgres server binaries: install the Debian package postgresql "
            "or the Python package pgserver, or set DATABASE_URL"
        ) from exc
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def pkglibdir(bindir: Path) -> Path:
    out = subprocess.run(
        [str(bindir / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=False
    )
    if out.returncode == 0 and out.stdout.strip():
        return Path(out.stdout.strip())
    return bindir.parent / "lib"


def has_pg_cron(bindir: Path) -> bool:
    return (pkglibdir(bindir) / "pg_cron.so").exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _service_account() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root (None when we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SERVICE_ACCOUNT):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_ACCOUNT],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(SERVICE_ACCOUNT)


def _make_traversable(path: Path) -> None:
    """Let the service account reach a data dir under root-owned parents (e.g. /root)."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except FileNotFoundError:
            continue
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


@dataclass
class EmbeddedPostgres:
    """One cluster in `root` (data in root/data, socket and logs beside it)."""

    root: Path
    port: int
    db_name: str = DEFAULT_DB_NAME
    pg_cron: bool | None = None  # None: preload pg_cron when the binaries have it

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.bindir = find_bindir()
        if self.pg_cron is None:
            self.pg_cron = has_pg_cron(self.bindir)
        self._account = _service_account()

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://{DEFAULT_SUPERUSER}@127.0.0.1:{self.port}/{self.db_name}"

    def admin_url(self, db: str = "postgres") -> str:
        return f"postgresql://{DEFAULT_SUPERUSER}@127.0.0.1:{self.port}/{db}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._account is not None:
            kwargs = {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        result = subprocess.run(  # type: ignore[call-overload]
            list(args), capture_output=True, text=True, env=env, cwd=str(self.root), **kwargs
        )
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def _chown(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._account is not None:
            _make_traversable(self.root)
            self._chown(self.root)
        if self.initialised():
            return
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.datadir),
            "-U", DEFAULT_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        )  # fmt: skip
        # Loopback only, trust auth: a developer's local server, never a deployment.
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.root}'",
            "max_connections = 200",
            "shared_buffers = 128MB",
            "fsync = on",
            "timezone = 'UTC'",
        ]
        if self.pg_cron:
            conf += [
                "shared_preload_libraries = 'pg_cron'",
                f"cron.database_name = '{self.db_name}'",
                "cron.use_background_workers = on",
                "max_worker_processes = 20",
            ]
        with open(self.datadir / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            f.write("\n".join(conf) + "\n")

    def running(self) -> bool:
        if not self.initialised():
            return False
        return self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "status", check=False).returncode == 0

    def start(self) -> str:
        """Create if needed, start if not running, make sure the database exists; return its URL."""
        with self._lock():
            self.init()
            if not self.running():
                if not self.logfile.exists():
                    self.logfile.touch()
                self._chown(self.logfile)
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D", str(self.datadir),
                    "-l", str(self.logfile),
                    "-o", f"-p {self.port}",
                    "-w", "-t", "60",
                    "start",
                )  # fmt: skip
            self._wait_ready()
            self._ensure_database()
        return self.url

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.db_name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.db_name}"')

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Two processes starting the same local server at once must not both run initdb."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root.parent / f".{self.root.name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def local_server() -> EmbeddedPostgres:
    """The run command's server: ./.data/pg (or $CRM_DATA_DIR/pg) on $EMBEDDED_PG_PORT."""
    data_dir = Path(os.environ.get("CRM_DATA_DIR", ".data"))
    port = int(os.environ.get("EMBEDDED_PG_PORT", "54329"))
    return EmbeddedPostgres(root=data_dir / "pg", port=port)
