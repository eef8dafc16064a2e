"""Socket.IO plumbing for co-editing: one lock for every outgoing packet.

A binary Socket.IO event leaves as several WebSocket frames (a header, then each attachment). When two
threads send to the same client at once (the frame thread and an acknowledgement), their frames can
interleave and the client can no longer decode either. Queuing a whole packet under one lock keeps each
packet's frames together; queuing is all that happens under it, so it is held for microseconds.
"""

from __future__ import annotations

import threading
from typing import Any

import socketio

SEND_LOCK = threading.RLock()


class _SerialEmit:
    def emit(self, *args: Any, **kwargs: Any) -> Any:
        with SEND_LOCK:
            return super().emit(*args, **kwargs)  # type: ignore[misc]


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
    """Make packets sent to one client (acknowledgements, connect answers) take the same lock."""
    send_packet = server._send_packet

    def locked_send_packet(eio_sid: str, pkt: Any) -> None:
        with SEND_LOCK:
            send_packet(eio_sid, pkt)

    server._send_packet = locked_send_packet  # type: ignore[method-assign]
