"""The hot path of co-editing events (`app/collab/events.py`).

Accepted updates and presence skip Flask-SocketIO's per-event request context; anything the hot path would
refuse goes to the ordinary handler, which decides again and explains. In-process, with Flask-SocketIO's
test client, so that the request contexts can be counted.
"""

from __future__ import annotations

from typing import Any

import flask_socketio
import pytest
from flask import g

from app.collab import awareness, engine
from app.collab.hub import hub
from app.extensions import socketio

NAMESPACE = "/collab"


@pytest.fixture
def contexts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The events that went through Flask-SocketIO's request context, from now on."""
    seen: list[str] = []
    original = flask_socketio.SocketIO._handle_event

    def counting(self: Any, handler: Any, message: str, *args: Any) -> Any:
        seen.append(message)
        return original(self, handler, message, *args)

    monkeypatch.setattr(flask_socketio.SocketIO, "_handle_event", counting)
    return seen


def test_accepted_events_skip_the_request_context_and_refused_ones_are_explained(
    app, client, make_user, make_code, group, login, request
):
    code = make_code()
    login(make_user("editor", group))
    sock = socketio.test_client(app, namespace=NAMESPACE, flask_test_client=client)
    # In-process, socket events share the fixture's app context, where Flask-Login cached the user of the
    # login request (request_started, which clears it, fires for HTTP requests only).
    g.pop("_login_user", None)
    joined = sock.emit("join", {"code": code.id}, namespace=NAMESPACE, callback=True)
    assert joined["ok"] is True
    doc = engine.new_doc()
    doc.apply_update(joined["update"])
    before = doc.get_state()
    engine.text_root(doc).insert(0, "«hot-path token» ")
    update = doc.get_update(before)
    seen = request.getfixturevalue("contexts")

    presence = awareness.encode({77: (1, '{"user":{"name":"Åsa Öberg"}}')})
    assert sock.emit("awareness", {"code": code.id, "update": presence}, namespace=NAMESPACE, callback=True) == {
        "ok": True
    }
    # Acknowledged later by the writer, once committed: the replica has it at once.
    sock.emit("update", {"code": code.id, "update": update}, namespace=NAMESPACE)
    assert "«hot-path token»" in (hub.replica_text(code.id) or "")
    assert seen == []

    oversized = {"code": code.id, "update": b"x" * (awareness.MAX_CLIENTS * 17)}
    refused = sock.emit("awareness", oversized, namespace=NAMESPACE, callback=True)
    assert (refused["ok"], refused["status"]) == (False, 400)
    assert "16 KB" in refused["error"]
    undecodable = {"code": code.id, "update": b"\x01\x01" + bytes(range(255, 0, -1)) * 4}
    refused = sock.emit("update", undecodable, namespace=NAMESPACE, callback=True)
    assert (refused["ok"], refused["status"]) == (False, 400)
    elsewhere = sock.emit("update", {"code": 999_999, "update": update}, namespace=NAMESPACE, callback=True)
    assert (elsewhere["ok"], elsewhere["status"]) == (False, 404)
    assert seen == ["awareness", "update", "update"]
    assert (hub.replica_text(code.id) or "").count("«hot-path token»") == 1
    sock.disconnect(namespace=NAMESPACE)
