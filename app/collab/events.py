"""The /collab Socket.IO namespace: join a code's working text, sync, send updates and presence.

Every event names its code and is authorised again from the database; answers go back as
acknowledgements `{"ok": bool, ...}` so a client can tell durable from refused.
"""

from __future__ import annotations

from typing import Any

from flask import request, session
from flask_login import current_user
from flask_socketio import Namespace, join_room, leave_room

from app.collab import engine
from app.collab.hub import Member, Room, hub, room_name
from app.collab.service import EventAccess, event_access
from app.db import db
from app.drafting.models import Code
from app.errors import NotFound


def _refuse(status: int, message: str) -> dict[str, Any]:
    return {"ok": False, "status": status, "error": message}


class CollabNamespace(Namespace):
    def on_connect(self, auth: Any = None) -> bool:
        # Only signed-in people open a socket; what they may do is decided per event.
        return bool(current_user.is_authenticated)

    def on_disconnect(self, reason: Any = None) -> None:
        hub.leave(request.sid)  # type: ignore[attr-defined]

    def _authorise(self, data: Any, *, write: bool) -> tuple[EventAccess, Room] | dict[str, Any]:
        if not isinstance(data, dict):
            return _refuse(400, "Send an object naming the code.")
        try:
            granted = event_access(db.session, session.get("_user_id"), data.get("code"))
            room = hub.room_by_id(db.session, granted.code_id)
        except NotFound:
            return _refuse(404, "No working text you may open has that number.")
        finally:
            # Give the connection back before any waiting: a handler holding one while it waits for the
            # group commit would starve the pool.
            db.session.close()
        if room is None:
            return _refuse(404, "No working text you may open has that number.")
        if write and not granted.can_write:
            return _refuse(403, "You may read this working text but not change it.")
        return granted, room

    def on_join(self, data: Any = None) -> dict[str, Any]:
        authorised = self._authorise(data, write=False)
        if isinstance(authorised, dict):
            return authorised
        granted, room = authorised
        vector = data.get("state_vector")
        if vector is not None and not isinstance(vector, (bytes, bytearray)):
            return _refuse(400, "The state vector must be binary.")
        try:
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
            return _refuse(400, "The state vector could not be decoded.")
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
            return _refuse(409, "Join the working text before sending changes.")
        try:
            update = engine.check_update(data.get("update"))
            hub.receive_update(room, granted.user_id, update)
        except engine.InvalidUpdate as error:
            return _refuse(400, str(error))
        except TimeoutError:
            return _refuse(503, "The change could not be saved in time; it will be sent again.")
        return {"ok": True}

    def on_awareness(self, data: Any = None) -> dict[str, Any]:
        authorised = self._authorise(data, write=False)
        if isinstance(authorised, dict):
            return authorised
        _, room = authorised
        payload = data.get("update")
        if not isinstance(payload, (bytes, bytearray)) or len(payload) > 16 * 1024:
            return _refuse(400, "A presence update must be binary and at most 16 KB.")
        try:
            hub.receive_awareness(room, request.sid, bytes(payload))  # type: ignore[attr-defined]
        except ValueError:
            return _refuse(400, "The presence update could not be decoded.")
        return {"ok": True}
