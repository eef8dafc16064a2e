"""Prometheus metrics at /metrics, for a bearer token (`METRICS_TOKEN`) or a signed-in site admin.

Each server process answers for itself: Flask-SocketIO needs one gunicorn worker per process, so every
process listens on its own port and Prometheus scrapes each as its own target (no multiprocess mode).
Counters and per-process gauges are summed across targets; the database-wide gauges (indexing queue,
outbox) read the same rows from every process, so take their max().
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, has_app_context, request
from flask_login import current_user
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.db import db, utcnow

log = logging.getLogger(__name__)

request_latency = Histogram(
    "accord_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (the URL rule, not the path), method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
comments_accepted = Counter(
    "accord_comments_accepted", "Comments and replies stored and acknowledged with a receipt (not replays)."
)
socket_connections = Gauge("accord_socket_connections", "Open Socket.IO connections on /collab in this process.")
socket_events = Counter(
    "accord_socket_events", "Socket.IO events handled, by event and answer status.", ["event", "status"]
)

bp = Blueprint("ops_metrics", __name__)


class AccordCollector(Collector):
    """Reads what is already counted elsewhere (the co-editing hub, queue tables) when scraped."""

    def collect(self) -> Iterator[Any]:
        from app.collab.hub import hub

        updates = CounterMetricFamily(
            "accord_collab_updates", "Co-editing updates committed to the log by this process (rate() = updates/s)."
        )
        updates.add_metric([], hub.stats["updates"])
        yield updates
        commits = CounterMetricFamily(
            "accord_collab_commits",
            "Group commits of the co-editing update log by this process (updates / commits = batch size).",
        )
        commits.add_metric([], hub.stats["batches"])
        yield commits
        fallbacks = CounterMetricFamily(
            "accord_collab_folds_in_server",
            "Compactions folded in the server because the compaction process failed (each one held the GIL).",
        )
        fallbacks.add_metric([], hub.folder.in_process)
        yield fallbacks
        per_room = {code_id: len(room.members) for code_id, room in list(hub.rooms.items())}
        if not has_app_context():
            return  # scraped outside a request (a test calling generate_latest): no database readings
        yield from _intake_writer(current_app.extensions.get("accord_intake_writer"))
        up = GaugeMetricFamily("accord_metrics_database_up", "Whether the database answered this scrape.")
        try:
            yield from self._from_database(per_room)
            up.add_metric([], 1)
        except Exception:
            db.session.rollback()
            log.warning("metrics could not read the database", exc_info=True)
            up.add_metric([], 0)
        yield up

    @staticmethod
    def _from_database(per_room: dict[int, int]) -> Iterator[Any]:
        from app.drafting.models import Code
        from app.outbox.models import OutboxMessage
        from app.search.models import SearchQueueItem

        session = db.session
        now = utcnow()
        joined = GaugeMetricFamily(
            "accord_collab_connections", "Connections joined to a code's working text in this process.", labels=["code"]
        )
        if per_room:
            slugs = dict(session.execute(select(Code.id, Code.slug).where(Code.id.in_(per_room))).tuples().all())
            for code_id, count in sorted(per_room.items()):
                joined.add_metric([slugs.get(code_id, str(code_id))], count)
        queue_length, queue_oldest = session.execute(select(func.count(), func.min(SearchQueueItem.created_at))).one()
        # With the mail sender's delivery states, only queued messages wait; failed or skipped ones never go.
        status = getattr(OutboxMessage, "status", None)
        waiting = status == "queued" if status is not None else OutboxMessage.sent_at.is_(None)
        backlog, outbox_oldest = session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(waiting)
        ).one()
        session.rollback()  # read-only: end the transaction rather than hold it open until teardown
        yield joined
        yield _gauge("accord_search_queue_length", "Changes waiting to be indexed for search.", queue_length)
        yield _gauge(
            "accord_search_queue_oldest_seconds",
            "Age of the oldest change waiting to be indexed.",
            _age(queue_oldest, now),
        )
        yield _gauge("accord_outbox_backlog", "Messages in the outbox not yet sent.", backlog)
        yield _gauge(
            "accord_outbox_oldest_seconds", "Age of the oldest unsent outbox message.", _age(outbox_oldest, now)
        )


def _intake_writer(writer: Any) -> Iterator[Any]:
    """The comment intake writer of this process (app/comments/writer.py): how it batches, and its backlog."""
    batches = CounterMetricFamily(
        "accord_intake_batches",
        "Transactions of the intake writer (group commit): new comments, and retries of stored ones answered.",
    )
    batches.add_metric([], writer.batches if writer else 0)
    yield batches
    yield _gauge(
        "accord_intake_waiting", "Checked comments waiting for the intake writer's next transaction.",
        writer.waiting if writer else 0,
    )  # fmt: skip
    yield _gauge(
        "accord_intake_largest_batch", "The most comments the intake writer stored in one transaction.",
        writer.largest_batch if writer else 0,
    )  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(oldest: Any, now: Any) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # SQLite hands back naive values through func.min (no column type to apply)
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())


_collector = AccordCollector()
_registered = threading.Lock()
_is_registered = False


def _register_collector() -> None:
    global _is_registered
    with _registered:
        if not _is_registered:
            REGISTRY.register(_collector)
            _is_registered = True


def _authorised() -> bool:
    token = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())
    return bool(current_user.is_authenticated and current_user.is_admin)


@bp.get("/metrics")
def metrics() -> Response:
    if not _authorised():
        response = Response("Metrics need a bearer token or a site admin's session.\n", 401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="accord-metrics"'
        return response
    return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)


def observe_socket_event(event: str, data: Any, result: Any, seconds: float) -> None:
    """Count a Socket.IO event; track open connections from connect and disconnect."""
    if event == "connect":
        status = "200" if result is not False else "401"
        if result is not False:
            socket_connections.inc()
    elif event == "disconnect":
        status = "200"
        socket_connections.dec()
    elif isinstance(result, dict):
        status = str(result.get("status", 200))
    else:
        status = "deferred"  # acknowledged later by the writer thread, once committed
    socket_events.labels(event, status).inc()


def init_app(app: Flask) -> None:
    """Time every request by route and serve /metrics."""
    _register_collector()
    app.register_blueprint(bp)

    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    # First, like the request id: refusals by earlier before-request functions (CSRF) are timed too.
    app.before_request_funcs.setdefault(None, []).insert(0, start_timer)

    @app.after_request
    def observe_request(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            request_latency.labels(route, request.method, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response
