"""The /collab Socket.IO namespace: join a code's working text, sync, send updates and presence.

Every event names its code and is authorised again from the database; answers go back as
acknowledgements `{"ok": bool, ...}` so a client can tell durable from refused.
"""

from __future__ import annotations

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


def _refuse(status: int, message: Text) -> dict[str, Any]:
    # The acknowledgement is serialised as JSON: turn a lazy translation into text in the reader's language.
    return {"ok": False, "status": status, "error": str(message)}


def _answer(error: BaseException | None) -> dict[str, Any]:
    # Runs in the writer thread, outside any request: the message is in English.
    if error is None:
        return {"ok": True}
    return _refuse(503, _l("The change could not be saved in time; it will be sent again."))


class CollabNamespace(Namespace):
    def on_connect(self, auth: Any = None) -> bool:
        # Only signed-in people open a socket; what they may do is decided per event.
        return bool(current_user.is_authenticated)

    def on_disconnect(self, reason: Any = None) -> None:
        hub.leave(request.sid)  # type: ignore[attr-defined]

    def _authorise(self, data: Any, *, write: bool) -> tuple[EventAccess, Room] | dict[str, Any]:
        if not isinstance(data, dict):
            return _refuse(400, _l("Send an object naming the code."))
        try:
            # The one authorisation query runs on a plain pooled connection (no ORM session, no pre-ping),
            # given back at once: a handler holding one while it waits for the group commit would starve
            # the pool. It still runs for every event, so a revoked role applies to the very next one.
            with hub.auth_connection() as connection:
                granted = event_access(connection, session.get("_user_id"), data.get("code"))  # type: ignore[arg-type]
            room = hub.rooms.get(granted.code_id)
            if room is None:
                try:
                    room = hub.room_by_id(db.session, granted.code_id)
                finally:
                    db.session.close()
        except NotFound:
            return _refuse(404, _l("No working text you may open has that number."))
        if room is None:
            return _refuse(404, _l("No working text you may open has that number."))
        if write and not granted.can_write:
            return _refuse(403, _l("You may read this working text but not change it."))
        return granted, room

    def on_join(self, data: Any = None) -> dict[str, Any]:
        authorised = self._authorise(data, write=False)
        if isinstance(authorised, dict):
            return authorised
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

    def on_update(self, data: Any = None) -> dict[str, Any]:
        authorised = self._authorise(data, write=True)
        if isinstance(authorised, dict):
            return authorised
        granted, room = authorised
        if request.sid not in room.members:  # type: ignore[attr-defined]
            return _refuse(409, _l("Join the working text before sending changes."))
        ticket = transport.current_ticket()
        try:
            update = engine.check_update(data.get("update"))
            if ticket is not None:
                # Acknowledged by the writer thread once committed; this reader thread goes on reading.
                hub.receive_update(room, granted.user_id, update, on_done=lambda error: ticket.send(_answer(error)))
                return transport.DEFERRED  # type: ignore[return-value]
            hub.receive_update(room, granted.user_id, update)
        except engine.InvalidUpdate as error:
            return _refuse(400, str(error))
        except TimeoutError:
            return _refuse(503, _l("The change could not be saved in time; it will be sent again."))
        return {"ok": True}

    def on_awareness(self, data: Any = None) -> dict[str, Any]:
        authorised = self._authorise(data, write=False)
        if isinstance(authorised, dict):
            return authorised
        _, room = authorised
        payload = data.get("update")
        if not isinstance(payload, (bytes, bytearray)) or len(payload) > 16 * 1024:
            return _refuse(400, _l("A presence update must be binary and at most 16 KB."))
        try:
            hub.receive_awareness(room, request.sid, bytes(payload))  # type: ignore[attr-defined]
        except ValueError:
            return _refuse(400, _l("The presence update could not be decoded."))
        return {"ok": True}
