"""The /collab Socket.IO namespace: join a code's working text, sync, send updates and presence.

Every event names its code and is authorised again from the database; answers go back as
acknowledgements `{"ok": bool, ...}` so a client can tell durable from refused.

The two events that every keystroke and cursor move send, `update` and `awareness`, are first tried on a
hot path without Flask-SocketIO's per-event request context: building it (URL matching, the session, the
teardown of every extension) cost about a fifth of the server's CPU with 150 editors typing, more than the
authorisation and the CRDT work together. The hot path needs nothing that context gives: the user comes
from the connection's copy of the session, the code's access from the same one query. Both paths run the
same `take_update` / `take_presence`; the hot path only keeps what they accept, and whatever they refuse
goes to the ordinary handler, which decides again and explains in the person's language.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import request, session
from flask_login import current_user
from flask_socketio import Namespace, join_room, leave_room

from app.collab import engine, transport
from app.collab.hub import Member, Room, hub, room_name
from app.collab.service import EventAccess, event_access
from app.db import db
from app.drafting.models import Code
from app.errors import NotFound, Text
from app.errors import lazy_gettext as _l

MAX_PRESENCE_BYTES = 16 * 1024


def _refuse(status: int, message: Text) -> dict[str, Any]:
    # The acknowledgement is serialised as JSON: turn a lazy translation into text in the reader's language.
    return {"ok": False, "status": status, "error": str(message)}


def _answer(error: BaseException | None) -> dict[str, Any]:
    # Runs in the writer thread, outside any request: the message is in English.
    if error is None:
        return {"ok": True}
    return _refuse(503, _l("The change could not be saved in time; it will be sent again."))


@dataclass(frozen=True)
class Refusal:
    status: int
    message: Text


def _granted(login_id: object, data: dict[str, Any]) -> EventAccess | None:
    # The one authorisation query runs on a plain pooled connection (no ORM session, no pre-ping), given
    # back at once: a handler holding one while it waits for the group commit would starve the pool. It
    # runs for every event, so a revoked role applies to the very next one.
    try:
        with hub.auth_connection() as connection:
            return event_access(connection, login_id, data.get("code"))
    except NotFound:
        return None


def _loaded_room(code_id: int) -> Room | None:
    """The code's room, loading its replica if this process has none yet (needs an app context)."""
    room = hub.rooms.get(code_id)
    if room is None:
        try:
            room = hub.room_by_id(db.session, code_id)
        finally:
            db.session.close()
    return room


def _authorise(
    login_id: object, data: Any, *, write: bool, room_for: Callable[[int], Room | None]
) -> tuple[EventAccess, Room] | Refusal:
    if not isinstance(data, dict):
        return Refusal(400, _l("Send an object naming the code."))
    granted = _granted(login_id, data)
    room = room_for(granted.code_id) if granted is not None else None
    if granted is None or room is None:
        return Refusal(404, _l("No working text you may open has that number."))
    if write and not granted.can_write:
        return Refusal(403, _l("You may read this working text but not change it."))
    return granted, room


def take_update(sid: str, login_id: object, data: Any, room_for: Callable[[int], Room | None]) -> Any:
    """Apply and log an editor's update; the answer, DEFERRED (acknowledged once committed) or a Refusal."""
    authorised = _authorise(login_id, data, write=True, room_for=room_for)
    if isinstance(authorised, Refusal):
        return authorised
    granted, room = authorised
    if sid not in room.members:
        return Refusal(409, _l("Join the working text before sending changes."))
    ticket = transport.current_ticket()
    try:
        update = engine.check_update(data.get("update"))
        if ticket is not None:
            # Acknowledged by the writer thread once committed; this reader goes on reading.
            hub.receive_update(room, granted.user_id, update, on_done=lambda error: ticket.send(_answer(error)))
            return transport.DEFERRED
        hub.receive_update(room, granted.user_id, update)
    except engine.InvalidUpdate as error:  # raised before anything is applied or queued
        return Refusal(400, str(error))
    except TimeoutError:
        return Refusal(503, _l("The change could not be saved in time; it will be sent again."))
    return {"ok": True}


def take_presence(sid: str, login_id: object, data: Any, room_for: Callable[[int], Room | None]) -> Any:
    """Record and relay a presence update; the answer or a Refusal."""
    authorised = _authorise(login_id, data, write=False, room_for=room_for)
    if isinstance(authorised, Refusal):
        return authorised
    _, room = authorised
    payload = data.get("update")
    if not isinstance(payload, (bytes, bytearray)) or len(payload) > MAX_PRESENCE_BYTES:
        return Refusal(400, _l("A presence update must be binary and at most 16 KB."))
    try:
        hub.receive_awareness(room, sid, bytes(payload))
    except ValueError:
        return Refusal(400, _l("The presence update could not be decoded."))
    return {"ok": True}


def _answered(result: Any) -> Any:
    return _refuse(result.status, result.message) if isinstance(result, Refusal) else result


_HOT_EVENTS = {"update": take_update, "awareness": take_presence}


class CollabNamespace(Namespace):
    def trigger_event(self, event: str, *args: Any) -> Any:
        take = _HOT_EVENTS.get(event)
        if take is not None and len(args) == 2:
            sid, data = args
            environ = self.socketio.server.get_environ(sid, namespace=self.namespace)
            # Flask-SocketIO's copy of the session, made at connect: what `session` is in a handler.
            saved = environ.get("saved_session") if environ else None
            if saved is not None:
                # Only rooms this process holds: loading one needs the context this path does without.
                answer = take(sid, saved.get("_user_id"), data, hub.rooms.get)
                if not isinstance(answer, Refusal):
                    return answer
        return super().trigger_event(event, *args)

    def on_connect(self, auth: Any = None) -> bool:
        # Only signed-in people open a socket; what they may do is decided per event.
        return bool(current_user.is_authenticated)

    def on_disconnect(self, reason: Any = None) -> None:
        hub.leave(request.sid)  # type: ignore[attr-defined]

    def on_join(self, data: Any = None) -> dict[str, Any]:
        authorised = _authorise(session.get("_user_id"), data, write=False, room_for=_loaded_room)
        if isinstance(authorised, Refusal):
            return _answered(authorised)  # type: ignore[no-any-return]
        granted, room = authorised
        vector = data.get("state_vector")
        if vector is not None and not isinstance(vector, (bytes, bytearray)):
            return _refuse(400, _l("The state vector must be binary."))
        try:
            # Rebuilding the document from the log costs a whole load: only when another process (or a
            # whole-text write racing the room's first load) may have committed what the replica lacks.
            if hub.needs_refresh(room):
                code = db.session.get(Code, granted.code_id)
                if code is not None:
                    hub.refresh(db.session, room, code)
            name = current_user.display_name
        finally:
            db.session.close()
        member = Member(request.sid, granted.user_id, name, granted.can_write)  # type: ignore[attr-defined]
        try:
            missing, server_vector, presence = hub.join(room, member, bytes(vector) if vector else None)
        except ValueError:
            return _refuse(400, _l("The state vector could not be decoded."))
        join_room(room_name(room.code_id))
        return {
            "ok": True,
            "can_write": granted.can_write,
            "update": missing,
            "state_vector": server_vector,
            "awareness": presence,
            "user": {"id": granted.user_id, "name": name},
        }

    def on_leave(self, data: Any = None) -> dict[str, Any]:
        if isinstance(data, dict) and isinstance(data.get("code"), int):
            leave_room(room_name(data["code"]))
        hub.leave(request.sid)  # type: ignore[attr-defined]
        return {"ok": True}

    def on_update(self, data: Any = None) -> Any:
        return _answered(take_update(request.sid, session.get("_user_id"), data, _loaded_room))  # type: ignore[attr-defined]

    def on_awareness(self, data: Any = None) -> Any:
        return _answered(take_presence(request.sid, session.get("_user_id"), data, _loaded_room))  # type: ignore[attr-defined]
