"""The process-wide co-editing hub: replicas per code, group-committed update log, coalesced fan-out.

Hot path for one update: check it, apply it to the replica, queue it for the writer, wait for the
commit, acknowledge. Rendering, stringifying and snapshots happen elsewhere (compaction), because
pycrdt's `str(text)` grows costly as a text fragments while applying an update stays ~10 µs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from pycrdt import Doc, merge_updates
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.collab import awareness as awareness_codec
from app.collab import engine, store
from app.collab.folding import Folder
from app.db import db
from app.drafting.models import Code

log = logging.getLogger(__name__)

NAMESPACE = "/collab"
FRAME_SECONDS = 0.03
# Each frame is one message to every member: past this many messages a second, frames come less often (up to
# MAX_FRAME_SECONDS apart), so that 200 editors and 200 viewers cost the process 8,000 sends a second, not 13,000.
FRAME_MESSAGES_PER_SECOND = 8_000
MAX_FRAME_SECONDS = 0.05
# Compaction folds the log into the snapshot. It rebuilds the document from the database, so it runs by
# time and by log size rather than every few hundred updates (at 100 editors that was twice a second).
COMPACT_AFTER_UPDATES = 10_000
COMPACT_AFTER_SECONDS = 10.0
# Refreshing the plain-text copy (`Code.working_text`) stringifies the document and makes the search indexer
# re-index the whole working text (pure Python, ~1 s of CPU for 60,000 words): at most this often while a
# room is busy, and whenever a room empties.
TEXT_REFRESH_SECONDS = 120.0
# A join re-reads the log only when something may have been committed that this replica has not seen:
# another process (Redis configured), or a whole-text write racing the room's first load.
FRESH_ROOM_SECONDS = 5.0
WRITE_BATCH = 512
GATHER_SECONDS = 0.01
ACK_TIMEOUT_SECONDS = 15.0
REDIS_CHANNEL = "accord:collab:updates"


def room_name(code_id: int) -> str:
    return f"code-{code_id}"


def frame_interval(members: int) -> float:
    """Seconds between frames for this many members in this process's rooms."""
    return min(MAX_FRAME_SECONDS, max(FRAME_SECONDS, members / FRAME_MESSAGES_PER_SECOND))


def frame_payload(code_id: int, updates: list[bytes], presence: list[bytes]) -> dict[str, Any]:
    """One frame for every member of a room: the merged document update and the merged presence, in base64.

    Text, not Socket.IO binary: a binary event travels as a header plus one WebSocket message per attachment,
    and Engine.IO writes each as its own message, so update and presence as two binary events cost every
    member four sends a frame; one JSON text event costs one. Sending is what the server spends most on at
    a hundred editors and more, and base64 of a few hundred bytes, done once per room, is cheap.
    """
    payload: dict[str, Any] = {"code": code_id}
    if updates:
        payload["update"] = b64encode(updates[0] if len(updates) == 1 else merge_updates(*updates)).decode("ascii")
    if presence:
        payload["awareness"] = b64encode(awareness_codec.merge(presence)).decode("ascii")
    return payload


@dataclass
class Member:
    sid: str
    user_id: int
    name: str
    can_write: bool
    # Awareness client ids this connection announced, with their latest clock, to remove them on leave.
    clients: dict[int, int] = field(default_factory=dict)
    last_awareness: bytes | None = None


@dataclass
class Room:
    code_id: int
    doc: Doc
    lock: threading.Lock = field(default_factory=threading.Lock)
    members: dict[str, Member] = field(default_factory=dict)
    pending_updates: list[bytes] = field(default_factory=list)
    pending_awareness: list[bytes] = field(default_factory=list)
    since_compaction: int = 0
    last_compaction: float = field(default_factory=time.monotonic)
    last_text_refresh: float = field(default_factory=time.monotonic)
    loaded_at: float = field(default_factory=time.monotonic)


@dataclass
class _Write:
    code_id: int
    user_id: int | None
    data: bytes
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    # Called by the writer thread once the write is committed (None) or failed (the error), if set.
    on_done: Callable[[BaseException | None], None] | None = None


class CollabHub:
    """Holds this process's replicas and the threads that persist and fan out their updates."""

    def __init__(self) -> None:
        self.process_id = uuid.uuid4().bytes
        self.rooms: dict[int, Room] = {}
        self._rooms_lock = threading.Lock()
        self._writes: queue.Queue[_Write] = queue.Queue()
        # (code id, whether to refresh the plain-text copy too)
        self._compactions: queue.Queue[tuple[int, bool]] = queue.Queue()
        self._app: Flask | None = None
        self._emit: Callable[..., Any] | None = None
        self._redis: Any = None
        self._started = False
        self._start_lock = threading.Lock()
        self._auth_engine: Engine | None = None
        # Compaction's CRDT work runs in a child process, off this process's GIL.
        self.folder = Folder()
        self.stats = {"updates": 0, "frames": 0, "batches": 0, "compactions": 0}

    # --- life cycle ------------------------------------------------------------------------------

    def init_app(self, app: Flask, emit: Callable[..., Any]) -> None:
        # A new app (a test, a benchmark) means a new database: replicas of the old one are void.
        self._app = app
        self._emit = emit
        self.rooms.clear()
        self._redis = None
        # Close the old database's pooled connections now, rather than leaving them to the garbage collector.
        old_engine, self._auth_engine = self._auth_engine, None
        if old_engine is not None:
            old_engine.dispose()
        url = app.config.get("SOCKETIO_MESSAGE_QUEUE")
        if url and url.startswith("redis"):
            import redis

            self._redis = redis.Redis.from_url(url)

    def _ensure_started(self) -> None:
        # Threads start on first use, so importing the app (CLI, tests, migrations) starts nothing.
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            threading.Thread(target=self._write_loop, name="collab-writer", daemon=True).start()
            threading.Thread(target=self._compact_loop, name="collab-compactor", daemon=True).start()
            threading.Thread(target=self._frame_loop, name="collab-frames", daemon=True).start()
            if self._redis is not None:
                threading.Thread(target=self._replica_feed_loop, name="collab-feed", daemon=True).start()
            self._started = True

    # --- rooms -----------------------------------------------------------------------------------

    def room_by_id(self, session: Session, code_id: int) -> Room | None:
        """Return a code's room; load it when needed (None if the code is gone)."""
        room = self.rooms.get(code_id)
        if room is not None:
            return room
        code = session.get(Code, code_id)
        return self.room(session, code) if code is not None else None

    def room(self, session: Session, code: Code) -> Room:
        """Return the code's room, loading its replica from the database the first time."""
        self._ensure_started()
        room = self.rooms.get(code.id)
        if room is not None:
            return room
        with self._rooms_lock:
            room = self.rooms.get(code.id)
            if room is None:
                doc = store.load(session, code)
                session.commit()
                room = Room(code.id, doc)
                self.rooms[code.id] = room
            return room

    def needs_refresh(self, room: Room) -> bool:
        """Whether a join should bring the replica up to the log (see `FRESH_ROOM_SECONDS`)."""
        return self._redis is not None or time.monotonic() - room.loaded_at < FRESH_ROOM_SECONDS

    def refresh(self, session: Session, room: Room, code: Code) -> None:
        """Bring the replica up to the log, for anything another process committed before this one listened."""
        doc = store.load(session, code)
        session.commit()
        with room.lock:
            missing = doc.get_update(room.doc.get_state())
            room.doc.apply_update(missing)

    def join(self, room: Room, member: Member, client_state_vector: bytes | None) -> tuple[bytes, bytes, list[bytes]]:
        """Add a member; return (update the client misses, server state vector, others' awareness)."""
        with room.lock:
            # Decode first: a join refused for a bad state vector must not make the connection a member.
            missing = room.doc.get_update(client_state_vector) if client_state_vector else room.doc.get_update()
            room.members[member.sid] = member
            state_vector = room.doc.get_state()
            others = [m.last_awareness for m in room.members.values() if m.last_awareness and m.sid != member.sid]
        return missing, state_vector, [awareness_codec.merge(others)] if others else []

    def leave(self, sid: str) -> None:
        """Remove a connection from every room; announce its cursors gone; compact rooms left empty."""
        for room in list(self.rooms.values()):
            with room.lock:
                member = room.members.pop(sid, None)
                if member is None:
                    continue
                if member.clients:
                    room.pending_awareness.append(awareness_codec.removal_update(member.clients))
                empty = not room.members
            if empty:
                self._compactions.put((room.code_id, True))

    def member(self, code_id: int, sid: str) -> Member | None:
        room = self.rooms.get(code_id)
        return room.members.get(sid) if room else None

    # --- updates ---------------------------------------------------------------------------------

    def receive_update(
        self, room: Room, user_id: int, data: bytes, on_done: Callable[[BaseException | None], None] | None = None
    ) -> None:
        """Apply an editor's update, make it durable, and queue it for the others.

        Returns only after the update is committed to the log, so an acknowledgement means durable.

        Raises:
            engine.InvalidUpdate: when the bytes are not a valid update (nothing is applied or stored).
            TimeoutError: when the database did not commit in time (the client keeps and resends it).

        With `on_done`, returns at once instead: the writer thread calls `on_done(None)` after the commit,
        or `on_done(error)` if it failed; acknowledge from there.
        """
        with room.lock:
            engine.apply_checked(room.doc, data)
            # Peers get it in the next frame; the sender's acknowledgement below still waits for the commit.
            # Should the commit fail, the unacknowledged sender re-sends the update when it reconnects.
            room.pending_updates.append(data)
        write = _Write(room.code_id, user_id, data, on_done=on_done)
        self._writes.put(write)
        if on_done is not None:
            return
        if not write.done.wait(ACK_TIMEOUT_SECONDS):
            raise TimeoutError("The update log did not answer in time.")
        if write.error is not None:
            raise write.error

    def publish_committed(self, code_id: int, data: bytes) -> None:
        """Fan out an update that a whole-text write already committed (form, API, import)."""
        room = self.rooms.get(code_id)
        if room is not None:
            with room.lock:
                room.doc.apply_update(data)
                room.pending_updates.append(data)
        self._feed_replicas(code_id, data)

    def receive_awareness(self, room: Room, sid: str, data: bytes) -> None:
        """Record and relay a presence update (cursor, name, clause)."""
        clients = awareness_codec.read_clients(data)
        with room.lock:
            member = room.members.get(sid)
            if member is None:
                return
            for client_id, (clock, present) in clients.items():
                if present:
                    member.clients[client_id] = clock
                else:
                    member.clients.pop(client_id, None)
            member.last_awareness = data
            room.pending_awareness.append(data)

    # --- threads ---------------------------------------------------------------------------------

    def _own_engine(self) -> Engine:
        """A one-connection engine for a background thread, so request threads can never starve it."""
        assert self._app is not None
        with self._app.app_context():
            return create_engine(db.engine.url, pool_size=1, max_overflow=0, pool_pre_ping=True)

    def auth_connection(self) -> Any:
        """A pooled connection for the per-event authorisation query (a context manager).

        Its own engine: no ORM session bookkeeping, no pre-ping round trip per event, and a pool that the
        writer and the compactor never wait on.
        """
        engine_ = self._auth_engine
        if engine_ is None:
            with self._start_lock:
                if self._auth_engine is None:
                    assert self._app is not None
                    with self._app.app_context():
                        self._auth_engine = create_engine(db.engine.url, pool_size=8, max_overflow=56, pool_timeout=10)
                engine_ = self._auth_engine
        return engine_.connect()

    def _write_loop(self) -> None:
        engine = self._own_engine()
        while True:
            batch = [self._writes.get()]
            # Let more arrive: every commit is an fsync (SQLite synchronous=FULL) and a round of statements,
            # and under gevent an fsync stops the whole process. At 150 editors this turned about 250
            # commits of 3 updates a second into a fraction as many, for 10 ms more before the sender's
            # acknowledgement (peers are not kept waiting: frames leave before the commit).
            time.sleep(GATHER_SECONDS)
            while len(batch) < WRITE_BATCH:
                try:
                    batch.append(self._writes.get_nowait())
                except queue.Empty:
                    break
            self._commit(engine, batch)

    def _commit(self, engine: Engine, writes: list[_Write]) -> None:
        session = Session(engine)
        try:
            store.append_many(session, [(w.code_id, w.data, w.user_id) for w in writes])
            session.commit()
        except Exception as error:
            session.rollback()
            log.exception("could not store %d collaborative updates", len(writes))
            for write in writes:
                write.error = error
                write.done.set()
                self._notify(write)
            return
        finally:
            session.close()
        self.stats["batches"] += 1
        per_room: dict[int, int] = {}
        for write in writes:
            write.done.set()
            self._notify(write)
            per_room[write.code_id] = per_room.get(write.code_id, 0) + 1
        self.stats["updates"] += len(writes)
        now = time.monotonic()
        for code_id, count in per_room.items():
            room = self.rooms.get(code_id)
            if room is None:
                continue
            with room.lock:
                room.since_compaction += count
                due = (
                    room.since_compaction >= COMPACT_AFTER_UPDATES or now - room.last_compaction > COMPACT_AFTER_SECONDS
                )
                if due:
                    refresh_text = now - room.last_text_refresh > TEXT_REFRESH_SECONDS
                    room.since_compaction = 0
                    room.last_compaction = now
                    if refresh_text:
                        room.last_text_refresh = now
            if due:
                self._compactions.put((code_id, refresh_text))
        if self._redis is not None:
            for write in writes:
                self._feed_replicas(write.code_id, write.data)

    @staticmethod
    def _notify(write: _Write) -> None:
        if write.on_done is not None:
            try:
                write.on_done(write.error)
            except Exception:
                log.exception("could not acknowledge a collaborative update")

    def _compact_loop(self) -> None:
        # Compaction rebuilds a document from the database: seconds of work at worst, kept off the writer.
        engine = self._own_engine()
        while True:
            first, refresh = self._compactions.get()
            code_ids = {first: refresh}
            while True:
                try:
                    code_id, refresh = self._compactions.get_nowait()
                except queue.Empty:
                    break
                code_ids[code_id] = code_ids.get(code_id, False) or refresh
            for code_id, refresh_text in code_ids.items():
                session = Session(engine)
                try:
                    code = session.get(Code, code_id)
                    fold = self.folder.fold
                    text = None if code is None else store.compact(session, code, refresh_text=refresh_text, fold=fold)
                    if text is not None:  # None: nothing to compact, or another process compacted first
                        session.commit()
                        self.stats["compactions"] += 1
                    else:
                        session.rollback()
                except Exception:
                    session.rollback()
                    log.exception("could not compact the working text of code %s", code_id)
                finally:
                    session.close()

    def _frame_loop(self) -> None:
        # One sender: every update and presence frame leaves from this thread, merged per room.
        while True:
            time.sleep(frame_interval(sum(len(room.members) for room in list(self.rooms.values()))))
            for room in list(self.rooms.values()):
                with room.lock:
                    updates, room.pending_updates = room.pending_updates, []
                    presence, room.pending_awareness = room.pending_awareness, []
                if not updates and not presence:
                    continue
                try:
                    self._send("frame", frame_payload(room.code_id, updates, presence), room.code_id)
                    self.stats["frames"] += 1
                except Exception:
                    log.exception("could not send a co-editing frame")

    def _send(self, event: str, payload: dict[str, Any], code_id: int) -> None:
        assert self._emit is not None
        self._emit(event, payload, to=room_name(code_id), namespace=NAMESPACE)

    # --- several processes -----------------------------------------------------------------------

    def _feed_replicas(self, code_id: int, data: bytes) -> None:
        # Fan-out to clients crosses processes through Socket.IO's queue; replicas need their own feed.
        if self._redis is not None:
            try:
                self._redis.publish(REDIS_CHANNEL, self.process_id + code_id.to_bytes(8, "big") + data)
            except Exception:
                log.exception("could not feed other processes' replicas")

    def _replica_feed_loop(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(REDIS_CHANNEL)
                for message in pubsub.listen():
                    payload: bytes = message["data"]
                    if payload[:16] == self.process_id:
                        continue
                    room = self.rooms.get(int.from_bytes(payload[16:24], "big"))
                    if room is not None:
                        with room.lock:
                            room.doc.apply_update(payload[24:])
            except Exception:
                log.exception("replica feed lost its Redis connection; reconnecting")
                time.sleep(1)

    # --- testing and benchmarks ------------------------------------------------------------------

    def replica_text(self, code_id: int) -> str | None:
        room = self.rooms.get(code_id)
        if room is None:
            return None
        with room.lock:
            return engine.text_of(room.doc)


hub = CollabHub()
