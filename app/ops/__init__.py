"""Operating Accord: structured logs, health and readiness, Prometheus metrics, session limits, faults."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register logging, request ids, /healthz, /readyz, /metrics, session timeouts and the 503 fault handler."""
    from app.extensions import socketio
    from app.ops import faults, health, logs, metrics, sessions

    logs.init_app(app)
    for namespace in socketio.namespace_handlers:
        sessions.guard_socket_connect(namespace)
        logs.instrument_namespace(namespace, metrics.observe_socket_event)
    metrics.init_app(app)
    sessions.init_app(app)
    faults.init_app(app)
    health.init_app(app)
