"""Socket.IO plumbing for co-editing: each outgoing packet's frames are queued together, per connection.

A binary Socket.IO event leaves as several WebSocket frames (a header, then each attachment). When two
threads send to the same client at once (the frame thread and an acknowledgement), their frames can
interleave and the client can no longer decode either. Queuing a whole packet under its connection's lock
keeps each packet's frames together. The lock is per connection (Engine.IO session), not global: frames
only need to stay together on one connection, and a global lock made every acknowledgement wait behind
the fan-out of a frame to a whole room (a convoy of handler threads at 100 editors). Queuing is all that
happens under a lock (the per-connection writer thread does the socket I/O), so it is held for
microseconds.
"""

from __future__ import annotations

import threading
from typing import Any

import socketio
from engineio import packet as eio_packet
from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from socketio import packet


def async_mode() -> str:
    """How Socket.IO runs here: "gevent" under a server that patched the standard library for gevent
    (gunicorn's gevent worker, as deploy/gunicorn.conf.py sets up), else "threading" (`flask serve`, tests).

    Decided by the server, not by a setting: Flask-SocketIO's own choice would take gevent whenever it is
    installed, and gevent without the patching blocks the whole process on every socket read.
    """
    try:
        from gevent import monkey
    except ImportError:
        return "threading"
    return "gevent" if monkey.is_module_patched("socket") else "threading"


# One lock per Engine.IO session id. Entries are tiny; they are dropped when the connection goes away.
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def connection_lock(eio_sid: str) -> threading.Lock:
    """Return the lock that keeps one connection's packets whole."""
    lock = _LOCKS.get(eio_sid)
    if lock is None:
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(eio_sid, threading.Lock())
    return lock


def forget_connection(eio_sid: str) -> None:
    _LOCKS.pop(eio_sid, None)


class _SerialEmit:
    def emit(  # type: ignore[no-untyped-def]
        self, event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kwargs
    ) -> Any:
        # Same as socketio.Manager.emit for the usual case (no callback: one packet encoded once for every
        # recipient), but each recipient's frames are queued under that recipient's own lock.
        if callback is not None:
            return super().emit(  # type: ignore[misc]
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs
            )
        room = to or room
        if namespace not in self.rooms:  # type: ignore[attr-defined]
            return None
        if isinstance(data, tuple):
            data = list(data)
        elif data is not None:
            data = [data]
        else:
            data = []
        if not isinstance(skip_sid, list):
            skip_sid = [skip_sid]
        server = self.server  # type: ignore[attr-defined]
        pkt = server.packet_class(packet.EVENT, namespace=namespace, data=[event, *data])
        encoded = pkt.encode()
        if not isinstance(encoded, list):
            encoded = [encoded]
        eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]
        send = server.eio.send_packet
        for sid, eio_sid in list(self.get_participants(namespace, room)):  # type: ignore[attr-defined]
            if sid in skip_sid:
                continue
            # A one-frame packet takes the lock too: sent while another thread is between a binary packet's
            # header and its attachments, it would land among them, and the client would read it as one.
            with connection_lock(eio_sid):
                for p in eio_pkts:
                    send(eio_sid, p)
        return None


class SerialManager(_SerialEmit, socketio.Manager):
    """The in-process client manager, sending each packet's frames contiguously."""


class _SerialBase(_SerialEmit, socketio.Manager):
    pass


class SerialRedisManager(socketio.RedisManager, _SerialBase):
    """The Redis client manager; local delivery of queued emits also goes through the lock."""


def client_manager(message_queue: str | None) -> socketio.Manager:
    """Return the client manager for this deployment: in-process, or shared through Redis."""
    if message_queue:
        return SerialRedisManager(message_queue)
    return SerialManager()


def serialise_direct_sends(server: socketio.Server) -> None:
    """Make packets sent to one client (acknowledgements, connect answers) take that client's lock."""
    send = server.eio.send

    def locked_send_packet(eio_sid: str, pkt: Any) -> None:
        encoded = pkt.encode()
        # Every packet, one frame or several: see `_SerialEmit.emit`.
        with connection_lock(eio_sid):
            for part in encoded if isinstance(encoded, list) else [encoded]:
                send(eio_sid, part)

    server._send_packet = locked_send_packet  # type: ignore[method-assign]

    handle_disconnect = server._handle_eio_disconnect

    def forgetting_disconnect(eio_sid: str, *args: Any) -> Any:
        try:
            return handle_disconnect(eio_sid, *args)
        finally:
            forget_connection(eio_sid)

    # Engine.IO holds the bound method it was given at start: register the wrapper in its place.
    server.eio.on("disconnect", forgetting_disconnect)


# --- acknowledgements sent after the handler returns -------------------------------------------------------
#
# An update is acknowledged only once committed. Waiting for the group commit inside the handler cost a
# thread per event (python-socketio's `async_handlers`), and under load hundreds to thousands of threads
# convoyed on one core. Instead the handler runs in the connection's own reader thread, applies and queues
# the update, and returns DEFERRED with the acknowledgement's ticket in hand; the writer thread answers the
# ticket once the batch is committed. The answer is the same Socket.IO ACK packet the handler's return
# value would have produced.

DEFERRED = object()
_CURRENT = threading.local()


class AckTicket:
    """Where to send one event's acknowledgement; `id` is None when the client asked for none."""

    __slots__ = ("eio_sid", "id", "namespace", "server")

    def __init__(self, server: Any, eio_sid: str, namespace: str, id: int | None) -> None:
        self.server, self.eio_sid, self.namespace, self.id = server, eio_sid, namespace, id

    def send(self, answer: Any) -> None:
        if self.id is None:
            return
        self.server._send_packet(
            self.eio_sid, self.server.packet_class(packet.ACK, namespace=self.namespace, id=self.id, data=[answer])
        )


def current_ticket() -> AckTicket | None:
    """The acknowledgement ticket of the event being handled in this thread (None outside one)."""
    return getattr(_CURRENT, "ticket", None)


def defer_acknowledgements(server: socketio.Server) -> None:
    """Let a handler return DEFERRED and acknowledge later through `current_ticket()`."""
    not_handled = server.not_handled

    def handle_event_internal(srv: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any) -> None:
        _CURRENT.ticket = AckTicket(srv, eio_sid, namespace, id)
        try:
            r = srv._trigger_event(data[0], namespace, sid, *data[1:])
        finally:
            _CURRENT.ticket = None
        if r is DEFERRED or r is not_handled or id is None:
            return
        if r is None:
            args = []
        elif isinstance(r, tuple):
            args = list(r)
        else:
            args = [r]
        srv._send_packet(eio_sid, srv.packet_class(packet.ACK, namespace=namespace, id=id, data=args))

    server._handle_event_internal = handle_event_internal  # type: ignore[method-assign]


class EventSessionInterface(SecureCookieSessionInterface):
    """Cookie sessions as usual; for a Socket.IO event, the copy that Flask-SocketIO keeps per connection.

    Flask opens a session for every request context it pushes, and Flask-SocketIO pushes one per event and
    then replaces that session with its own copy (`manage_session=True` keeps it in the connection's environ
    as `saved_session`). Decoding the signed cookie only to throw the result away cost about 4 % of the
    server's CPU with 100 editors typing. The first event of a connection still decodes it.
    """

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        saved = request.environ.get("saved_session")
        if saved is not None:
            return saved  # type: ignore[no-any-return]
        return super().open_session(app, request)
