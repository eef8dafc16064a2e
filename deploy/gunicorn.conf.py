"""gunicorn settings for one Accord server process: `gunicorn -c deploy/gunicorn.conf.py -b 127.0.0.1:5001`.

Flask-SocketIO runs under gunicorn's gevent worker (simple-websocket over gevent) with exactly one
worker per gunicorn process: gunicorn's own balancing cannot keep a Socket.IO client on one worker. To use
more cores, start more gunicorn processes on more ports, with Redis between them (SOCKETIO_MESSAGE_QUEUE or
REDIS_URL) and nginx in front with sticky sessions (deploy/nginx.conf). See docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

ROOT = Path(__file__).resolve().parent.parent
# Import `app` and `wsgi` from this checkout whatever the working directory.
sys.path.insert(0, str(ROOT))
chdir = str(ROOT)

from app.config import ConfigError, load_config  # noqa: E402
from app.ops.logs import JsonFormatter, RequestIdFilter  # noqa: E402
from app.ops.search_process import SearchWorkerProcess  # noqa: E402

# Check the settings in the master, before any worker starts: a wrong setting is one line and exit status 2,
# not a worker that fails, is restarted and fails again.
try:
    settings = load_config()
except ConfigError as error:
    print(error.message, file=sys.stderr, flush=True)
    raise SystemExit(2) from None

wsgi_app = "wsgi:app"
bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"]
# gevent: every connection is a greenlet, not an OS thread. Measured with 75 editors typing on one core
# (bench/collab.py): p95 send->peer 207-365 ms under gevent, 3.7 s with threads, which convoy on the GIL
# and collapse at 100 editors. The app follows the worker (app/collab/transport.py: async_mode).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
if worker_class not in ("gevent", "gthread"):
    print(f"GUNICORN_WORKER_CLASS must be gevent or gthread, not {worker_class!r}.", file=sys.stderr, flush=True)
    raise SystemExit(2)
workers = 1  # one, always: see above
# gevent: the open connections (WebSockets and requests) one process holds at most.
worker_connections = int(os.environ.get("GUNICORN_CONNECTIONS", "1000"))
# gthread: each open WebSocket holds a thread for as long as it is open; the rest serve ordinary requests.
threads = int(os.environ.get("GUNICORN_THREADS", "100"))
# Restarting a worker would drop every open editor connection: never recycle workers by request count.
max_requests = 0
timeout = 60
graceful_timeout = 30
keepalive = 5
# The app logs each request once itself, as JSON with its request id; gunicorn's access log would double it.
accesslog = None
errorlog = "-"
loglevel = settings["LOG_LEVEL"].lower()
proc_name = "accord"
# gunicorn's control socket has one default path per user: several processes on one host would fight over it.
# Signals (HUP, TERM) are all Accord needs.
control_socket_disable = True


class JsonLogger(Logger):
    """gunicorn's own messages (start, stop, worker timeouts) as JSON lines, like the app's."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
            handler.addFilter(RequestIdFilter())


if settings["LOG_FORMAT"] == "json":
    logger_class = JsonLogger

logging.captureWarnings(True)

# Indexing for search in a process of its own (app/ops/search_process.py says why), started by this master
# before it forks the server, which then leaves indexing to it.
search_worker: SearchWorkerProcess | None = None


def on_starting(server: Any) -> None:
    global search_worker
    if settings["SEARCH_WORKER_PROCESS"] and settings["SEARCH_INDEXER_THREAD"]:
        os.environ["SEARCH_INDEXER_THREAD"] = "0"  # read by the worker's app, created after the fork
        search_worker = SearchWorkerProcess(ROOT, server.log)
        search_worker.start()


def on_exit(server: Any) -> None:
    if search_worker is not None:
        search_worker.stop()
