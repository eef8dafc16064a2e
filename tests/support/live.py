"""Run real Accord server processes for tests and benchmarks, and log in to them as a browser would."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
FLASK = [sys.executable, "-m", "flask"]
# The production server: gunicorn with deploy/gunicorn.conf.py (one gevent worker).
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")]
DEMO_PASSWORD = "accord-demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "FLASK_APP": "app:create_app", "DATABASE_URL": database_url, "SECRET_KEY": "live-test-secret"}
    env.update(extra)
    return env


def prepare_database(env: dict[str, str]) -> None:
    """Migrate, load the demo codes and seed the demo accounts, as `make run` does."""
    for command in (["db", "upgrade"], ["drafts", "load", "drafts"], ["demo", "seed"]):
        subprocess.run([*FLASK, *command], cwd=ROOT, env=env, check=True, capture_output=True)


@dataclass
class LiveServer:
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)
    # Benchmarks pin the server to one core (taskset execs it, so the pid stays the server's own) and may
    # serve the app from another checkout to try a change.
    core: int | None = None
    root: Path = ROOT
    # Another way to serve than `flask serve`; it must listen on `port`.
    command: list[str] | None = None
    # Serve as in production: gunicorn with deploy/gunicorn.conf.py (`command` is then ignored).
    gunicorn: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def serving_pid(self) -> int:
        """The process that serves: gunicorn's one worker (its master only watches it), or `flask serve`."""
        if not self.gunicorn:
            return self.pid
        children = [pid for pid in self._children() if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        if len(children) != 1:
            raise RuntimeError(f"gunicorn should have one worker, found {children}")
        return children[0]

    @property
    def search_worker_pid(self) -> int | None:
        """The `flask search worker` that gunicorn's master starts beside its worker (app/ops/search_process.py)."""
        if not self.gunicorn:
            return None
        found = [pid for pid in self._children() if b"search\x00worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        return found[0] if found else None

    def _children(self) -> list[int]:
        # Each thread's own: the master's watcher thread starts the search worker again.
        tasks = Path(f"/proc/{self.pid}/task").glob("*/children")
        return sorted(int(pid) for task in tasks for pid in task.read_text().split())

    def start(self, timeout: float = 20.0) -> None:
        pin = ["taskset", "-c", str(self.core)] if self.core is not None else []
        with self.log_path.open("ab") as log:
            # The child keeps its own copy of the descriptor; ours can close at once.
            if self.gunicorn:
                # Tests stop servers with editors still connected: no need to wait 30 s for them to leave.
                serve = [*GUNICORN, "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "3"]
            else:
                serve = self.command or [*FLASK, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
            self.process = subprocess.Popen(
                [*pin, *serve, *self.extra_args],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so that a crash can take gunicorn's worker down with its master.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early; see {self.log_path}")
            try:
                if requests.get(self.url + "/login", timeout=1).status_code == 200:
                    return
            # gunicorn listens before its worker has loaded the app: a request can then time out.
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL to every process of the server: no clean shutdown, no flush, as in a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def live_server(
    env: dict[str, str], log_path: Path, port: int | None = None, *, gunicorn: bool = False
) -> Iterator[LiveServer]:
    server = LiveServer(port or free_port(), env, log_path, gunicorn=gunicorn)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def demo_server(prefix: str, *, gunicorn: bool = False) -> Iterator[LiveServer]:
    """A live server on a fresh temporary SQLite database prepared as `make run` prepares one (migrations, the
    demo codes, the demo accounts), with a search index of its own and room for many logins."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        tmp = Path(folder)
        # Every page logs in through the real form; the default 10 logins a minute would throttle a suite.
        env = server_env(
            f"sqlite:///{tmp}/accord.sqlite3", LOGIN_RATE_LIMIT="1000 per minute", SEARCH_INDEX_DIR=str(tmp / "index")
        )
        prepare_database(env)
        with live_server(env, tmp / "server.log", gunicorn=gunicorn) as server:
            yield server


def login(base_url: str, email: str, password: str = DEMO_PASSWORD) -> requests.Session:
    """Log in through the real form (with its CSRF token); return the session holding the cookie."""
    session = requests.Session()
    page = session.get(base_url + "/login", timeout=10).text
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    token = match.group(1) if match else ""
    response = session.post(
        base_url + "/login",
        data={"email": email, "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    if response.status_code != 302:
        raise RuntimeError(f"login as {email} failed with {response.status_code}")
    return session


def socket_headers(session: requests.Session) -> dict[str, str]:
    """Headers that carry a logged-in session into a python-socketio client's handshake."""
    cookie = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
    return {"Cookie": cookie, "User-Agent": session.headers.get("User-Agent", "accord-tests")}
