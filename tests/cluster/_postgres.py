"""A real PostgreSQL server, and a real MLflow tracking server on it, for the cluster tests.

``postgres``: initdb + pg_ctl in a temporary folder (outside pytest's 0700 tmp tree: the server runs as the
unprivileged ``postgres`` user when the tests run as root, since PostgreSQL refuses root), listening on 127.0.0.1
at a free port and on a unix socket in that folder; one login role with a password (scram-sha-256 over TCP, so the
password is really checked) owning the databases the tests create. Installed by tools/cluster/install_postgres.sh.

``mlflow_pg``: ``mlflow server`` with its backend store in a PostgreSQL database of that server and proxied
artifacts (``--artifacts-destination``), the way a lab shares one tracking server.

Anything that does not start fails the test with the tail of the server's log.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import answers, wait_until

USER, PASSWORD = "nvmxbar", "nvmxbar-test-pw"
INSTALL = "tools/cluster/install_postgres.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 3000) -> str:
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError as e:
        return f"(no log: {e})"


def pg_bindir() -> Path:
    """The newest Debian PostgreSQL's bin folder (/usr/lib/postgresql/<major>/bin), else pg_config's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    try:
        d = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
        if (d / "initdb").exists():
            return d
    except OSError:
        pass
    pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found: run {INSTALL}", pytrace=False)


@dataclass
class Postgres:
    bindir: Path
    root: Path
    port: int
    host: str = "127.0.0.1"
    user: str = USER
    password: str = PASSWORD

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, db: str, driver: str = "postgresql") -> str:
        """SQLAlchemy URL of database ``db`` over TCP with the role's password (what MLflow and Optuna get)."""
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def psql(self, sql: str, db: str = "postgres", admin: bool = False) -> str:
        """Run ``sql`` with psql and return its unaligned, tuples-only output. As the test role over TCP (password
        checked), or ``admin``: the superuser over the unix socket."""
        if admin:
            args, env = ["-h", str(self.socket_dir), "-U", "postgres"], dict(os.environ)
        else:
            args, env = ["-h", self.host, "-U", self.user], {**os.environ, "PGPASSWORD": self.password}
        cmd = [str(self.bindir / "psql"), *args, "-p", str(self.port), "-d", db, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r} on {db}: {r.stderr.strip()}")
        return r.stdout.strip()

    def create_database(self, name: str) -> str:
        """A fresh database owned by the test role; returns its URL."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin=True)
        self.psql(f'CREATE DATABASE "{name}" OWNER {self.user}', admin=True)
        return self.url(name)


def _as_server_user(root: Path) -> list[str]:
    """Command prefix that runs a PostgreSQL program unprivileged: ``runuser -u postgres --`` as root (the folder
    handed to that user), nothing otherwise."""
    if os.geteuid() != 0:
        return []
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"running as root and there is no `postgres` system user to run the server as: run {INSTALL}")
    for p in [root, *root.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def _run(cmd: list[str], what: str, log: Path) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(
            f"PostgreSQL: {what} failed ({' '.join(cmd)}):\n{r.stdout[-1500:]}{r.stderr[-1500:]}\n"
            f"server log tail:\n{tail(log)}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL server with the test role; stopped and deleted afterwards."""
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="nvmxbar-pg-"))  # /tmp is traversable by the server's user
    (root / "sock").mkdir()
    pg = Postgres(bindir=bindir, root=root, port=free_port())
    as_user = _as_server_user(root)
    data = root / "data"
    _run(
        as_user
        + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--locale=C"]
        + ["--auth-local=trust", "--auth-host=scram-sha-256"],
        "initdb",
        pg.log,
    )
    # light and disposable: small buffers, no fsync (a crash loses a test's data only)
    opts = (
        f"-p {pg.port} -k {pg.socket_dir} -c listen_addresses={pg.host} -c shared_buffers=32MB "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
    )
    _run(
        as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(pg.log), "-o", opts, "-w", "-t", "60", "start"],
        "start",
        pg.log,
    )
    try:
        try:
            pg.psql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'", admin=True)
            who = pg.psql("SELECT current_user")  # the role logs in over TCP with its password
        except RuntimeError as e:
            pytest.fail(f"PostgreSQL: the test role: {e}\nserver log tail:\n{tail(pg.log)}", pytrace=False)
        assert who == USER, who
        yield pg
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class MlflowServer:
    url: str
    backend_uri: str
    artifacts: Path
    log: Path
    db: str


def start_mlflow_server(pg: Postgres, root: Path, db: str = "mlflow") -> tuple[subprocess.Popen, MlflowServer]:
    backend = pg.create_database(db)
    port = free_port()
    srv = MlflowServer(f"http://127.0.0.1:{port}", backend, root / "artifacts", root / "mlflow-server.log", db)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend]
    cmd += ["--artifacts-destination", str(srv.artifacts), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1"]
    log = open(srv.log, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    # the first start creates the schema (migrations) in PostgreSQL
    if wait_until(lambda: answers(srv.url + "/health"), 180, alive=lambda: proc.poll() is None):
        return proc, srv
    stop(proc)
    pytest.fail(
        f"mlflow server on PostgreSQL did not answer /health (exit code {proc.returncode}):\n{tail(srv.log)}",
        pytrace=False,
    )


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started in its own session, with its worker processes."""
    if proc.poll() is None:
        with_group = hasattr(os, "killpg")
        try:
            os.killpg(proc.pid, signal.SIGTERM) if with_group else proc.terminate()
            proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)


@pytest.fixture(scope="session")
def mlflow_pg(postgres, tmp_path_factory):
    """An MLflow tracking server whose backend store is the PostgreSQL database ``mlflow``."""
    proc, srv = start_mlflow_server(postgres, tmp_path_factory.mktemp("mlflow-pg"))
    yield srv
    stop(proc)
