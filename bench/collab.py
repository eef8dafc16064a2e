"""Benchmark: N live co-editors (and M viewers) on a ~60,000-word working text, against a real server.

Run from the repository root:

    .venv/bin/python bench/collab.py --editors 25             # one run: 25 editors, 5 s warm-up, 30 s measured
    .venv/bin/python bench/collab.py --editors 200 --viewers 200
    .venv/bin/python bench/collab.py --sweep                  # 10, 25, 50, 100, 150 and 200 editors
    .venv/bin/python bench/collab.py --sweep --gunicorn       # against the production server (gunicorn, gevent)
    .venv/bin/python bench/collab.py --editors 150 --profile /tmp/prof   # plus a py-spy profile of the server

What it does, per run:

* A temporary SQLite database set up as `make run` does (migrate, demo drafts, demo accounts), whose demo
  code's working text is then made ~60,000 words through the real working-text form (logged in as the
  chair). The database is prepared once and copied for each run, so every run starts from the same text.
* A real server process (`flask serve`, threading mode; with `--gunicorn`, gunicorn with deploy/gunicorn.conf.py,
  gevent mode, its worker measured) pinned to core 0 with `taskset -c 0`; this load
  generator pins itself to core 1. Traffic goes to 127.0.0.1 only, and every run stops by itself.
* N editors (python-socketio `AsyncClient`s over WebSocket, all in this one asyncio thread, logged in as
  editor@ and chair@ alternately) each type a unique 5-character token (" @" + 4 base-62 characters,
  inserted before a space so that no token is ever split by another) every 200 ms ± 20 %, at a random
  place in the text, and send it as a CRDT update (`update {code, update}`), without waiting for the
  previous one to be acknowledged (as the browser editor does). With each token the editor also sends its
  presence (`awareness {code, update}`: a y-protocols awareness update with its name, colour and cursor, as
  y-codemirror.next writes it, ~250 bytes), as the browser does when the cursor moves; `--no-presence` leaves it out.
  - A few "verifying" editors (`--verifiers`, default 3) hold the full document: they apply every frame
    the server sends and insert at random places in the live text. They apply the frames received since
    their last token together, just before typing the next (and before the final check): pycrdt's change
    event walks the whole fragmented text, ~1.7 ms a frame, and applying each frame as it came took 15 %
    of the generator's core at 150 editors.
  - The other editors hold a pycrdt document synced once at join and never updated by others' frames:
    they insert at random word boundaries of that base text, so their updates are real CRDT updates,
    anchored in the real document, that the server applies like any other (the cheap path: ~30 µs each).
* M viewers (observer@, read only) join and receive frames.

Latency is measured from the moment an editor sends an update until each *other* client (editors and
viewers) receives the merged frame holding its token, per receiving client, for the updates sent during
the measured window (deliveries that arrive after the window still count). Presence latency likewise, from
sending a presence update until each other client receives the merged presence frame holding it (a state
that the same editor replaced before the frame left is superseded, not late: it is counted apart).

At the end, once the server is quiet, a fresh client joins and fetches the server's text: every verifying
editor's text must equal it, and every acknowledged token must appear in it exactly once.

The generator's own CPU use and the lag of its event loop are reported too: when the generator is
saturated the latencies it measures are too high, not too low. Its garbage collector is off from the
moment every client has joined until the run is drained (its pauses would be timed as latency).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import datetime as dt
import gc
import json
import logging
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import socketio  # noqa: E402

try:
    import aiohttp  # noqa: F401 - python-socketio's AsyncClient needs it for WebSocket
except ImportError:
    sys.exit("bench/collab.py needs aiohttp, which the app does not: .venv/bin/pip install aiohttp")
from pycrdt import Doc, Text, merge_updates  # noqa: E402

from app.collab import awareness  # noqa: E402
from tests.support.live import LiveServer, free_port, login, prepare_database, server_env, socket_headers  # noqa: E402

NAMESPACE = "/collab"
SLUG = "gpai-code"
TARGET_WORDS = 60_000
SWEEP = (10, 25, 50, 100, 150, 200)
SERVER_CORE = 0
GENERATOR_CORE = 1
ACK_TIMEOUT = 15.0  # as the browser editor
CONNECT_BATCH = 10
HIST_BIN = 1e-4  # latency histogram resolution: 0.1 ms
HIST_BINS = 600_000  # up to 60 s; later deliveries fall in the last bin
SLICE_SECONDS = 5.0
METRICS_TOKEN = "bench-metrics-token-not-secret"  # noqa: S105 - a throwaway server on 127.0.0.1
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TOKEN_RE = re.compile(rb" @([0-9A-Za-z]{4})")
PRESENCE_COLOURS = ("#30bced", "#6eeb83", "#ffbc42", "#ecd444", "#ee6352", "#9ac2c9", "#8acb88", "#1be7ff")
PRESENCE_SEQUENCE = re.compile(r'"bench":(\d+)')
ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Timeout)):")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Targets from the issue: (editors, viewers) -> p95 send-to-peer latency in ms.
TARGETS = {(150, 0): 100.0, (200, 200): 200.0}
EDITOR_ACCOUNTS = ("editor@accord.example", "chair@accord.example")
VIEWER_ACCOUNT = "observer@accord.example"


# --- the document ----------------------------------------------------------------------------------


def big_working_text(target_words: int = TARGET_WORDS) -> str:
    """The demo drafts repeated as numbered parts to ~target_words, every clause key suffixed per part."""
    from bench.render import build_parts

    previous, _ = build_parts(target_words)
    return "\n".join(previous)


def prepare_template(folder: Path, log: Path) -> tuple[Path, int, int]:
    """Create the database once, as `make run` does, with a ~60k-word working text; return (file, code id, words)."""
    db_file = folder / "template.sqlite3"
    env = bench_env(folder, db_file)
    print("Preparing the database (migrate, demo drafts, demo accounts) ...", flush=True)
    prepare_database(env)
    text = big_working_text()
    server = Server(env, log, core=None)
    server.start()
    try:
        session = login(server.url, "chair@accord.example")
        page = session.get(f"{server.url}/codes/{SLUG}/working", timeout=30).text
        code_id = int(_attr(page, r'data-code="(\d+)"'))
        csrf = _attr(page, r'name="csrf_token"[^>]*value="([^"]+)"')
        base = _attr(page, r'name="base_sha256"[^>]*value="([^"]*)"')
        start = time.perf_counter()
        answer = session.post(
            f"{server.url}/codes/{SLUG}/working",
            data={"csrf_token": csrf, "base_sha256": base, "text": text},
            allow_redirects=False,
            timeout=120,
        )
        if answer.status_code != 302:
            raise RuntimeError(f"saving the working text failed with {answer.status_code}: {answer.text[:500]}")
        saved = session.get(f"{server.url}/codes/{SLUG}/working", timeout=30).text
        if "Part 2:" not in saved:
            raise RuntimeError("the working text was not saved")
        print(
            f"  working text of {SLUG} (code {code_id}): {len(text.split()):,} words, "
            f"{len(text.encode()) / 1024:.0f} KiB, saved through the form in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
    finally:
        server.stop()
    return db_file, code_id, len(text.split())


def _attr(page: str, pattern: str) -> str:
    match = re.search(pattern, page)
    if not match:
        raise RuntimeError(f"{pattern!r} not found on the working-text page")
    return match.group(1)


def bench_env(folder: Path, db_file: Path) -> dict[str, str]:
    return server_env(
        f"sqlite:///{db_file}",
        SEARCH_INDEX_DIR=str(folder / "search-index"),
        SOCKETIO_MESSAGE_QUEUE="",
        RATELIMIT_STORAGE_URI="memory://",
        METRICS_TOKEN=METRICS_TOKEN,
    )


def collab_counters(url: str) -> tuple[float, float]:
    """The server's (updates committed, group commits) so far, from /metrics; NaN when it does not answer."""
    try:
        page = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5).text
    except requests.RequestException:
        return math.nan, math.nan
    found = dict(re.findall(r"^accord_collab_(updates|commits)_total ([0-9.e+]+)$", page, re.MULTILINE))
    return float(found.get("updates", "nan")), float(found.get("commits", "nan"))


# --- the server ------------------------------------------------------------------------------------


class Server(LiveServer):
    """The live test server, pinned to one core, reporting its CPU time, memory and threads."""

    def __init__(
        self, env: dict[str, str], log: Path, core: int | None, root: Path = ROOT, gunicorn: bool = False
    ) -> None:
        super().__init__(free_port(), env, log, core=core, root=root, gunicorn=gunicorn)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.serving_pid)

    def memory(self) -> tuple[float, float]:
        """(RSS, peak RSS) in MiB."""
        fields = {}
        for line in Path(f"/proc/{self.serving_pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.serving_pid}/task"))


def core_busy_seconds() -> dict[int, float]:
    """Busy (non-idle, non-iowait) CPU seconds of each core since boot, from /proc/stat."""
    busy = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(v) for v in values]
            busy[int(name[3:])] = (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK
    return busy


def proc_cpu_seconds(pid: int | str) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --- recording -------------------------------------------------------------------------------------


def token_text(number: int) -> bytes:
    digits = []
    for _ in range(4):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    assert number == 0, "out of tokens"
    return "".join(digits).encode()


class Arrivals:
    """Each frame part (update or presence) as each client received it: cheap to append to.

    Parts are interned: every client receives the same text, so each is decoded once, in the analysis.
    """

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.parts: list[str] = []
        self.client = array("i")
        self.at = array("d")
        self.part = array("i")
        self.last = 0.0

    def arrive(self, client: int, part: str) -> None:
        now = time.perf_counter()
        number = self.index.get(part)
        if number is None:
            number = self.index[part] = len(self.parts)
            self.parts.append(part)
        self.client.append(client)
        self.at.append(now)
        self.part.append(number)
        self.last = now

    def received(self) -> Any:
        """(client, time, part number) of every arrival."""
        return zip(self.client, self.at, self.part, strict=True)


class Recorder:
    """Every token sent, every ack, every frame arrival; cheap to append to, analysed after the run."""

    def __init__(self) -> None:
        self.tokens: list[bytes] = []
        self.index: dict[bytes, int] = {}
        self.sender = array("i")
        self.sent_at = array("d")
        self.acked_at = array("d")
        self.ack_ok = array("b")
        self.refusals: Counter[str] = Counter()
        self.updates = Arrivals()
        self.disconnects = 0
        # Presence: each update's send time by its sequence number (in its state).
        self.presence_sent_at = array("d")
        self.presence_sender = array("i")
        self.presence = Arrivals()

    def new_token(self, client: int) -> tuple[int, bytes]:
        number = len(self.tokens)
        token = token_text(number)
        self.tokens.append(token)
        self.index[token] = number
        self.sender.append(client)
        self.sent_at.append(math.nan)
        self.acked_at.append(math.nan)
        self.ack_ok.append(-1)
        return number, token

    @property
    def last_arrival(self) -> float:
        return max(self.updates.last, self.presence.last)

    def new_presence(self, client: int) -> int:
        self.presence_sender.append(client)
        self.presence_sent_at.append(time.perf_counter())
        return len(self.presence_sent_at) - 1

    def ack(self, number: int, answer: Any) -> None:
        self.acked_at[number] = time.perf_counter()
        ok = isinstance(answer, dict) and answer.get("ok") is True
        self.ack_ok[number] = 1 if ok else 0
        if not ok:
            status = answer.get("status") if isinstance(answer, dict) else answer
            self.refusals[f"refused {status}"] += 1

    def pending_acks(self) -> int:
        return sum(1 for number in range(len(self.tokens)) if self.ack_ok[number] == -1)


# --- clients ---------------------------------------------------------------------------------------


class Client:
    """One socket: an editor (cheap or verifying) or a viewer."""

    def __init__(self, number: int, kind: str, headers: dict[str, str], recorder: Recorder, code_id: int) -> None:
        self.number, self.kind, self.headers, self.recorder, self.code_id = number, kind, headers, recorder, code_id
        self.sio = socketio.AsyncClient(
            reconnection=False,
            handle_sigint=False,
            request_timeout=30,
            websocket_extra_options={"max_msg_size": 64 * 1024 * 1024},
        )
        self.sio.on("frame", self.on_frame, namespace=NAMESPACE)
        self.sio.on("disconnect", self.on_disconnect, namespace=NAMESPACE)
        self.doc: Doc | None = None
        self.text: Text | None = None
        self.mirror = b""  # verifying editors: the document's text as UTF-8, kept in step with every change
        self.own: list[int] = []  # cheap editors: base-text offsets of their own inserts, sorted
        self.presence_clock = 0
        self.unapplied: list[bytes] = []  # verifying editors: frames received, applied before the next token
        self.connected = False

    # Frames -----------------------------------------------------------------------------------------

    def on_frame(self, message: dict[str, Any]) -> None:
        # Frames stay base64 here: every client gets the same text, decoded once per frame in the analysis.
        if message.get("code") != self.code_id:
            return
        frame = message.get("update")
        if frame is not None:
            self.recorder.updates.arrive(self.number, frame)
            if self.kind == "verifier":
                self.unapplied.append(base64.b64decode(frame))
        presence = message.get("awareness")
        if presence is not None:
            self.recorder.presence.arrive(self.number, presence)

    def catch_up(self) -> None:
        """Apply the frames received since the last call, as one update (one change event)."""
        if self.unapplied:
            assert self.doc is not None
            frames, self.unapplied = self.unapplied, []
            self.doc.apply_update(frames[0] if len(frames) == 1 else merge_updates(*frames))

    def on_disconnect(self, *args: Any) -> None:
        if self.connected:
            self.recorder.disconnects += 1
        self.connected = False

    def _follow(self, event: Any) -> None:
        # Apply the text delta (positions in UTF-8 bytes) to the byte mirror in one copy.
        source = memoryview(self.mirror)
        pieces: list[Any] = []
        position = 0
        for op in event.delta:
            if "retain" in op:
                pieces.append(source[position : position + op["retain"]])
                position += op["retain"]
            elif "insert" in op:
                pieces.append(op["insert"].encode())
            elif "delete" in op:
                position += op["delete"]
        pieces.append(source[position:])
        self.mirror = b"".join(pieces)

    # Session ----------------------------------------------------------------------------------------

    async def connect(self, url: str, base: bytes) -> None:
        if self.kind != "viewer":
            self.doc = Doc()
            self.doc.apply_update(base)
            self.text = self.doc.get("text", type=Text)
            if self.kind == "verifier":
                self.mirror = str(self.text).encode()
                self.text.observe(self._follow)
        # A copy: the Engine.IO client moves the Cookie header out of the dict it is given.
        await self.sio.connect(
            url, headers=dict(self.headers), transports=["websocket"], namespaces=[NAMESPACE], wait_timeout=30
        )
        self.connected = True
        state = self.doc.get_state() if self.doc is not None else None
        answer = await self.sio.call("join", {"code": self.code_id, "state_vector": state}, NAMESPACE, timeout=120)
        if not answer.get("ok"):
            raise RuntimeError(f"join refused: {answer}")
        if self.kind == "verifier":
            assert self.doc is not None
            self.doc.apply_update(answer["update"])

    async def close(self) -> None:
        self.connected = False
        with contextlib.suppress(Exception):
            await self.sio.disconnect()

    # Typing -----------------------------------------------------------------------------------------

    def make_update(self, token: bytes, boundaries: list[int], rng: random.Random) -> bytes:
        """Insert " @" + token before a space, as a real CRDT update of this client's document."""
        assert self.doc is not None
        assert self.text is not None
        if self.kind == "verifier":
            self.catch_up()
            start = rng.randrange(len(self.mirror))
            position = self.mirror.find(b" ", start)
            if position < 0:
                position = self.mirror.find(b" ")
        else:
            # A document that only holds the base text and this editor's own inserts: shift the chosen base
            # offset by the inserts before it (each 6 bytes); inserts at the same offset go first.
            offset = rng.choice(boundaries)
            index = bisect.bisect_left(self.own, offset)
            position = offset + 6 * index
            self.own.insert(index, offset)
        before = self.doc.get_state()
        self.text.insert(position, " @" + token.decode())
        return self.doc.get_update(before)

    def make_presence(self, position: int, sequence: int) -> bytes:
        """This editor's awareness state after typing at `position`, shaped as y-codemirror.next's."""
        assert self.doc is not None
        self.presence_clock += 1
        colour = PRESENCE_COLOURS[self.number % len(PRESENCE_COLOURS)]
        at = {"type": None, "tname": "text", "item": {"client": self.doc.client_id, "clock": position}, "assoc": 0}
        state = json.dumps(
            {
                "user": {"name": f"Bench editor {self.number}", "color": colour, "colorLight": f"{colour}33"},
                "cursor": {"anchor": at, "head": at},
                "bench": sequence,
            },
            separators=(",", ":"),
        )
        return awareness.encode({self.doc.client_id: (self.presence_clock, state)})

    async def type(
        self, stop_at: float, interval: float, boundaries: list[int], rng: random.Random, presence: bool
    ) -> None:
        recorder = self.recorder
        next_at = time.perf_counter() + rng.uniform(0, interval)
        while True:
            next_at += interval * rng.uniform(0.8, 1.2)
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= stop_at or not self.connected:
                return
            number, token = recorder.new_token(self.number)
            update = self.make_update(token, boundaries, rng)
            recorder.sent_at[number] = time.perf_counter()
            await self.sio.emit(
                "update",
                {"code": self.code_id, "update": update},
                namespace=NAMESPACE,
                callback=lambda answer=None, number=number: recorder.ack(number, answer),
            )
            if presence:
                sequence = recorder.new_presence(self.number)
                update = self.make_presence(number, sequence)
                await self.sio.emit("awareness", {"code": self.code_id, "update": update}, namespace=NAMESPACE)


async def fetch_state(url: str, headers: dict[str, str], code_id: int) -> bytes:
    """Join as a fresh client with no state and return the server's whole document as one update."""
    sio = socketio.AsyncClient(
        reconnection=False, handle_sigint=False, websocket_extra_options={"max_msg_size": 64 * 1024 * 1024}
    )
    await sio.connect(url, headers=dict(headers), transports=["websocket"], namespaces=[NAMESPACE], wait_timeout=30)
    try:
        answer = await sio.call("join", {"code": code_id, "state_vector": None}, NAMESPACE, timeout=120)
        if not answer.get("ok"):
            raise RuntimeError(f"join refused: {answer}")
        return bytes(answer["update"])
    finally:
        await sio.disconnect()


def text_of(update: bytes) -> str:
    doc = Doc()
    doc.apply_update(update)
    return str(doc.get("text", type=Text))


# --- one run ---------------------------------------------------------------------------------------


@dataclass
class Result:
    editors: int
    viewers: int
    duration: float
    sent: int = 0
    accepted: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    unacked: int = 0
    latency: dict[str, float] = field(default_factory=dict)
    ack: dict[str, float] = field(default_factory=dict)
    deliveries: int = 0
    missing: int = 0
    frames_per_client: float = 0.0
    presence_sent: int = 0
    presence_latency: dict[str, float] = field(default_factory=dict)
    presence_deliveries: int = 0
    presence_superseded: int = 0
    # p95 of the send-to-peer latency of the updates sent in each 5-s slice of the window: a backlog shows.
    slice_p95: list[float] = field(default_factory=list)
    commits_per_s: float = math.nan
    updates_per_commit: float = math.nan
    server_cpu: float = 0.0
    server_rss: float = 0.0
    server_peak_rss: float = 0.0
    server_threads: int = 0
    server_errors: int = 0
    server_error_kinds: dict[str, int] = field(default_factory=dict)
    disconnects: int = 0
    generator_cpu: float = 0.0
    other_cpu: float = 0.0
    loop_lag_p95: float = 0.0
    connect_seconds: float = 0.0
    check: str = ""
    words: int = 0

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.duration

    @property
    def target(self) -> float | None:
        return TARGETS.get((self.editors, self.viewers))


def percentile(counts: array, total: int, pct: float) -> float:
    """Nearest-rank percentile of a histogram, in ms (bin upper edge); inf when it falls among lost deliveries.

    `total` counts every expected delivery, so deliveries that never arrived rank last, as infinitely late.
    """
    rank = max(1, math.ceil(pct / 100 * total))
    seen = 0
    for number, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return (number + 1) * HIST_BIN * 1000
    return math.inf


async def monitor_loop(lags: list[float], stop: asyncio.Event) -> None:
    """Measure how late the event loop wakes up: the generator's own saturation."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - start - 0.01)


async def run_once(
    args: argparse.Namespace, template: Path, code_id: int, folder: Path, editors: int, viewers: int
) -> Result:
    rng = random.Random(args.seed + editors * 1000 + viewers)
    run_dir = folder / f"run-{editors}-{viewers}"
    run_dir.mkdir()
    db_file = run_dir / "accord.sqlite3"
    shutil.copy(template, db_file)
    log = run_dir / "server.log"
    server = Server(
        bench_env(run_dir, db_file), log, core=SERVER_CORE, root=Path(args.server_root or ROOT), gunicorn=args.gunicorn
    )
    result = Result(editors, viewers, args.duration)
    recorder = Recorder()
    clients: list[Client] = []
    profiler: subprocess.Popen[bytes] | None = None
    server.start()
    try:
        sessions = {email: login(server.url, email) for email in (*EDITOR_ACCOUNTS, VIEWER_ACCOUNT)}
        headers = {email: socket_headers(session) for email, session in sessions.items()}
        base = await fetch_state(server.url, headers[VIEWER_ACCOUNT], code_id)
        base_text = text_of(base).encode()
        result.words = len(base_text.split())
        boundaries = [m.start() for m in re.finditer(rb" ", base_text)]
        verifiers = min(args.verifiers, editors)
        for number in range(editors):
            kind = "verifier" if number < verifiers else "editor"
            account = EDITOR_ACCOUNTS[number % 2]
            clients.append(Client(number, kind, headers[account], recorder, code_id))
        for number in range(editors, editors + viewers):
            clients.append(Client(number, "viewer", headers[VIEWER_ACCOUNT], recorder, code_id))

        start = time.perf_counter()
        for first in range(0, len(clients), CONNECT_BATCH):
            await asyncio.gather(*(c.connect(server.url, base) for c in clients[first : first + CONNECT_BATCH]))
        result.connect_seconds = time.perf_counter() - start
        # The generator's own garbage collections paused it for 70-110 ms at 150 editors (gen 2, over the
        # clients' objects), and every frame arriving meanwhile was timed that much late: none while typing.
        gc.freeze()
        gc.disable()
        print(
            f"  {editors} editors ({verifiers} verifying) + {viewers} viewers joined in {result.connect_seconds:.1f} s "
            f"(server pid {server.serving_pid}, {'gunicorn, gevent' if args.gunicorn else 'flask serve'}, log {log})",
            flush=True,
        )

        lags: list[float] = []
        stop_monitor = asyncio.Event()
        monitor = asyncio.create_task(monitor_loop(lags, stop_monitor))
        began = time.perf_counter()
        window_start = began + args.warmup
        window_end = window_start + args.duration
        typists = [
            asyncio.create_task(
                c.type(window_end, args.interval, boundaries, random.Random(rng.random()), args.presence)
            )
            for c in clients
            if c.kind != "viewer"
        ]
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        cpu0, self0, lag0, busy0 = server.cpu_seconds(), proc_cpu_seconds("self"), len(lags), core_busy_seconds()
        counted0 = await asyncio.to_thread(collab_counters, server.url)
        if args.profile:
            profiler = start_profiler(server.serving_pid, args.duration, Path(args.profile), editors, viewers)
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        cpu1, self1, lag1, busy1 = server.cpu_seconds(), proc_cpu_seconds("self"), len(lags), core_busy_seconds()
        elapsed = time.perf_counter() - window_start
        counted1 = await asyncio.to_thread(collab_counters, server.url)
        commits = counted1[1] - counted0[1]
        result.commits_per_s = commits / elapsed
        result.updates_per_commit = (counted1[0] - counted0[0]) / commits if commits else math.nan
        result.server_cpu = 100 * (cpu1 - cpu0) / elapsed
        result.generator_cpu = 100 * (self1 - self0) / elapsed
        # Whatever else ran on the two cores meanwhile (other processes on this machine) skews the figures.
        busy = sum(busy1[core] - busy0[core] for core in (SERVER_CORE, GENERATOR_CORE) if core in busy0)
        result.other_cpu = max(0.0, 100 * busy / elapsed - result.server_cpu - result.generator_cpu)
        result.server_rss, result.server_peak_rss = server.memory()
        result.server_threads = server.threads()
        window_lags = sorted(lags[lag0:lag1]) or [0.0]
        result.loop_lag_p95 = window_lags[max(0, math.ceil(0.95 * len(window_lags)) - 1)] * 1000
        await asyncio.gather(*typists)

        # Drain: every ack in (or timed out), then no frame for a second.
        deadline = time.perf_counter() + ACK_TIMEOUT + 15
        while time.perf_counter() < deadline:
            if recorder.pending_acks() == 0 and time.perf_counter() - recorder.last_arrival > 1.0:
                break
            await asyncio.sleep(0.1)
        stop_monitor.set()
        await monitor
        if profiler is not None:
            profiler.wait(60)
            print(summarise_profile(profile_path(args, editors, viewers)), flush=True)

        # Check: a fresh join sees every verifying editor's text, and each acknowledged token exactly once.
        problems: list[str] = []
        try:
            server_text = text_of(await fetch_state(server.url, headers[VIEWER_ACCOUNT], code_id))
        except Exception as error:  # an overloaded server is a result, not a crash
            server_text = ""
            problems.append(f"a fresh join failed after the run: {type(error).__name__}: {error}")
        for client in clients:
            if client.kind == "verifier":
                assert client.text is not None
                client.catch_up()
                if str(client.text) != server_text:
                    problems.append(f"verifier {client.number}'s text differs from the server's")
                if client.mirror != str(client.text).encode():
                    problems.append(f"verifier {client.number}'s mirror drifted")
        found: Counter[bytes] = Counter(TOKEN_RE.findall(server_text.encode()))
        acked = [n for n in range(len(recorder.tokens)) if recorder.ack_ok[n] == 1]
        absent = sum(1 for n in acked if found.get(recorder.tokens[n], 0) == 0)
        repeated = sum(1 for n in acked if found.get(recorder.tokens[n], 0) > 1)
        stray = sum(1 for token in found if token not in recorder.index)
        if (absent or repeated) and server_text:
            problems.append(f"acknowledged tokens not in the server's text: {absent}, more than once: {repeated}")
        if stray:
            problems.append(f"{stray} unknown tokens in the text")
        unacked_in_text = sum(
            1 for n in range(len(recorder.tokens)) if recorder.ack_ok[n] != 1 and recorder.tokens[n] in found
        )
        result.check = (
            "; ".join(problems)
            if problems
            else f"ok: {verifiers} verifying texts = server text; {len(acked):,} acked tokens once each"
            + (f" ({unacked_in_text} unacked present)" if unacked_in_text else "")
        )
    finally:
        gc.enable()
        if profiler is not None and profiler.poll() is None:
            profiler.terminate()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        server.stop()
    result.disconnects = recorder.disconnects
    lines = log.read_text(errors="replace").splitlines()
    result.server_errors = sum(1 for line in lines if line.startswith("Traceback"))
    result.server_error_kinds = dict(Counter(m.group(1) for line in lines if (m := ERROR_LINE.match(line))))
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
        shutil.copy(log, Path(args.logs) / f"server-{editors}e-{viewers}v.log")
    analyse(recorder, result, window_start, window_end, len(clients))
    return result


def analyse(recorder: Recorder, result: Result, window_start: float, window_end: float, clients: int) -> None:
    """Turn the recorded sends, acks and arrivals into the run's figures."""
    in_window = bytearray(len(recorder.tokens))
    acks: list[float] = []
    for number in range(len(recorder.tokens)):
        sent = recorder.sent_at[number]
        if window_start <= sent < window_end:
            in_window[number] = 1
            result.sent += 1
            if recorder.ack_ok[number] == 1:
                result.accepted += 1
                acks.append((recorder.acked_at[number] - sent) * 1000)
            elif recorder.ack_ok[number] == -1:
                result.unacked += 1
    result.refusals = dict(recorder.refusals)
    if acks:
        acks.sort()
        result.ack = {
            "p50": statistics.median(acks),
            "p95": acks[max(0, math.ceil(0.95 * len(acks)) - 1)],
        }

    tokens_of = (map(recorder.index.get, TOKEN_RE.findall(base64.b64decode(frame))) for frame in recorder.updates.parts)
    frame_tokens = [[n for n in numbers if n is not None and in_window[n]] for numbers in tokens_of]
    counts = array("q", bytes(8 * HIST_BINS))
    delivered = array("i", bytes(4 * len(recorder.tokens)))
    sent_at, sender = recorder.sent_at, recorder.sender
    total = 0
    worst = 0.0
    frames_in_window = 0
    last = HIST_BINS - 1
    slices: list[Counter[int]] = [Counter() for _ in range(math.ceil(result.duration / SLICE_SECONDS))]
    for client, at, frame in recorder.updates.received():
        if window_start <= at < window_end:
            frames_in_window += 1
        for number in frame_tokens[frame]:
            if sender[number] == client:
                continue
            latency = at - sent_at[number]
            counts[min(last, int(latency / HIST_BIN))] += 1
            slices[min(len(slices) - 1, int((sent_at[number] - window_start) / SLICE_SECONDS))][
                int(latency * 1000)
            ] += 1
            delivered[number] += 1
            total += 1
            worst = max(worst, latency)
    result.deliveries = total
    for per_ms in slices:
        rank, seen = math.ceil(0.95 * sum(per_ms.values())), 0
        for ms in sorted(per_ms):
            seen += per_ms[ms]
            if seen >= rank:
                result.slice_p95.append(ms + 1)
                break
    expected = (clients - 1) * sum(in_window)
    result.missing = expected - total
    result.frames_per_client = frames_in_window / clients / result.duration
    analyse_presence(recorder, result, window_start, window_end, clients)
    if expected:
        result.latency = {
            "p50": percentile(counts, expected, 50),
            "p95": percentile(counts, expected, 95),
            "p99": percentile(counts, expected, 99),
            "max": math.inf if result.missing else worst * 1000,
        }


def analyse_presence(recorder: Recorder, result: Result, window_start: float, window_end: float, clients: int) -> None:
    """Presence send-to-peer latency, from the sequence numbers in each delivered state."""
    sent_at, sender = recorder.presence_sent_at, recorder.presence_sender
    in_window = [window_start <= at < window_end for at in sent_at]
    result.presence_sent = sum(in_window)
    frame_sequences = []
    for frame in recorder.presence.parts:
        numbers = []
        for _, _, state in awareness.entries(base64.b64decode(frame)):
            match = PRESENCE_SEQUENCE.search(state)
            if match and in_window[int(match.group(1))]:
                numbers.append(int(match.group(1)))
        frame_sequences.append(numbers)
    latencies: list[float] = []
    for client, at, frame in recorder.presence.received():
        latencies.extend(at - sent_at[n] for n in frame_sequences[frame] if sender[n] != client)
    result.presence_deliveries = len(latencies)
    # Not lost: a newer state from the same editor replaced it before the frame left (or the run ended first).
    result.presence_superseded = (clients - 1) * result.presence_sent - len(latencies)
    if latencies:
        latencies.sort()
        result.presence_latency = {
            "p50": statistics.median(latencies) * 1000,
            "p95": latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)] * 1000,
        }


def profile_path(args: argparse.Namespace, editors: int, viewers: int) -> Path:
    return Path(args.profile) / f"collab-{editors}e-{viewers}v.txt"


def start_profiler(pid: int, duration: float, folder: Path, editors: int, viewers: int) -> subprocess.Popen[bytes]:
    """py-spy on the server for the measured window (GIL holder only, without pausing the server)."""
    folder.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    out = folder / f"collab-{editors}e-{viewers}v.txt"
    out.unlink(missing_ok=True)
    command = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(duration)), "--rate", "100"]
    command += ["--nonblocking", "--gil", "--format", "raw", "--output", str(out)]
    print(f"  profiling the server into {out}", flush=True)
    return subprocess.Popen(
        ["taskset", "-c", str(GENERATOR_CORE), *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def summarise_profile(path: Path, top: int = 25) -> str:
    """The functions that held the GIL most, inclusive and own time, from py-spy's raw (collapsed) stacks."""
    if not path.exists():
        return f"  no profile in {path} (py-spy could not attach?)"
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # Frames look like "function (file.py:line)"; the first ones name the process and the thread.
        frames = [
            re.sub(r":\d+\)$", ")", f)
            for f in stack.split(";")
            if "(" in f and not f.startswith(("process ", "thread "))
        ]
        samples = int(count)
        total += samples
        for name in set(frames):
            inclusive[name] += samples
        if frames:
            own[frames[-1]] += samples
    if not total:
        return f"  empty profile in {path}"
    lines = [f"  {total} samples of the GIL holder; inclusive (own) share of the samples:"]
    for name, samples in inclusive.most_common(top):
        lines.append(f"  {100 * samples / total:5.1f} % ({100 * own[name] / total:4.1f} %)  {name}")
    lines.append("  most own time:")
    for name, samples in own.most_common(top // 2):
        lines.append(f"  {100 * samples / total:5.1f} %  {name}")
    return "\n".join(lines)


# --- report ----------------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "lost"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def table(results: list[Result]) -> str:
    header = [
        "Editors + viewers",
        "Median (ms)",
        "p95 (ms)",
        "p99 (ms)",
        "Accepted/s",
        "Refused / unacked",
        "Missing deliveries",
        "Ack p95 (ms)",
        "Presence p50 / p95 (ms)",
        "Frames/s per client",
        "Server CPU",
        "Server RSS (MiB)",
        "Generator CPU",
        "Other CPU",
        "Target",
        "Check",
    ]
    rows = []
    for r in results:
        target = r.target
        p95 = r.latency.get("p95")
        verdict = (
            "—"
            if target is None
            else (f"p95 ≤ {target:g} ms: " + ("pass" if p95 is not None and p95 <= target else "FAIL"))
        )
        rows.append(
            [
                f"{r.editors} + {r.viewers}",
                fmt_ms(r.latency.get("p50")),
                fmt_ms(p95),
                fmt_ms(r.latency.get("p99")),
                f"{r.accepted_per_s:.0f}",
                f"{sum(r.refusals.values())} / {r.unacked}",
                f"{r.missing:,} of {r.deliveries + r.missing:,}",
                fmt_ms(r.ack.get("p95")),
                f"{fmt_ms(r.presence_latency.get('p50'))} / {fmt_ms(r.presence_latency.get('p95'))}"
                if r.presence_sent
                else "off",
                f"{r.frames_per_client:.1f}",
                f"{r.server_cpu:.0f} %",
                f"{r.server_rss:.0f}",
                f"{r.generator_cpu:.0f} %",
                f"{r.other_cpu:.0f} %",
                verdict,
                "ok" if r.check.startswith("ok") else "FAIL",
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def describe(r: Result) -> str:
    return (
        f"  {r.editors} editors + {r.viewers} viewers: sent {r.sent:,} updates in {r.duration:g} s, "
        f"accepted {r.accepted_per_s:.0f}/s; send→peer latency median {fmt_ms(r.latency.get('p50'))} ms, "
        f"p95 {fmt_ms(r.latency.get('p95'))} ms, p99 {fmt_ms(r.latency.get('p99'))} ms, "
        f"max {fmt_ms(r.latency.get('max'))} ms over {r.deliveries:,} deliveries ({r.missing:,} missing); "
        f"ack median {fmt_ms(r.ack.get('p50'))} ms, p95 {fmt_ms(r.ack.get('p95'))} ms; "
        f"presence: sent {r.presence_sent:,}, median {fmt_ms(r.presence_latency.get('p50'))} ms, "
        f"p95 {fmt_ms(r.presence_latency.get('p95'))} ms over {r.presence_deliveries:,} deliveries "
        f"({r.presence_superseded:,} superseded); "
        f"refusals {r.refusals or 0}, unacked {r.unacked}, client disconnects {r.disconnects}, "
        f"tracebacks in the server log {r.server_errors} {r.server_error_kinds or ''}; "
        f"p95 per {SLICE_SECONDS:g}-s slice of sending {', '.join(fmt_ms(v) for v in r.slice_p95)} ms; "
        f"update log: {r.commits_per_s:.0f} commits/s of {r.updates_per_commit:.1f} updates; "
        f"{r.frames_per_client:.1f} frames/s per client; server CPU {r.server_cpu:.0f} % of core {SERVER_CORE}, "
        f"RSS {r.server_rss:.0f} MiB (peak {r.server_peak_rss:.0f}), {r.server_threads} threads; "
        f"generator CPU {r.generator_cpu:.0f} % of core {GENERATOR_CORE}, loop lag p95 {r.loop_lag_p95:.1f} ms; "
        f"other processes on cores {SERVER_CORE}-{GENERATOR_CORE}: {r.other_cpu:.0f} % of a core; "
        f"check: {r.check}"
    )


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--editors",
        type=lambda value: [int(n) for n in value.split(",")],
        default=[25],
        help="editors typing at once (default 25); a comma-separated list runs each in turn",
    )
    parser.add_argument(
        "--gunicorn", action="store_true",
        help="serve as in production: gunicorn with deploy/gunicorn.conf.py (gevent), not `flask serve` (threads)",
    )  # fmt: skip
    parser.add_argument("--viewers", type=int, default=0, help="read-only sockets watching (default 0)")
    parser.add_argument("--sweep", action="store_true", help=f"run for {', '.join(map(str, SWEEP))} editors in turn")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per run (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of typing before measuring (default 5)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between an editor's tokens (default 0.2)")
    parser.add_argument("--verifiers", type=int, default=3, help="editors that hold the full document (default 3)")
    parser.add_argument(
        "--no-presence", dest="presence", action="store_false",
        help="editors send no presence (awareness) updates; by default one goes with every token, as in a browser",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", metavar="DIR", help="record a py-spy profile of the server (raw stacks) into DIR")
    parser.add_argument("--logs", metavar="DIR", help="keep each run's server log in DIR")
    parser.add_argument(
        "--server-root",
        metavar="DIR",
        help="serve the app from another checkout (to try a server change); default: this one",
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.duration > 600 or args.warmup < 0 or args.warmup > 120:
        parser.error("--duration must be in (0, 600] and --warmup in [0, 120]")
    runs = [(n, args.viewers) for n in (SWEEP if args.sweep else args.editors)]

    os.sched_setaffinity(0, {GENERATOR_CORE})
    # The clients' libraries log each socket they give up on ("packet queue is empty"); disconnects are counted.
    for name in ("engineio.client", "socketio.client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    began = time.perf_counter()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="accord-collab-bench-") as name:
        folder = Path(name)
        template, code_id, words = prepare_template(folder, folder / "setup.log")
        for editors, viewers in runs:
            print(
                f"Run: {editors} editors, {viewers} viewers, {args.warmup:g} s warm-up, {args.duration:g} s measured",
                flush=True,
            )
            # Every run is bounded: set-up, warm-up, window, drain and check, with room to spare.
            limit = 300 + args.warmup + args.duration + (editors + viewers) * 0.5
            try:
                result = asyncio.run(
                    asyncio.wait_for(run_once(args, template, code_id, folder, editors, viewers), limit)
                )
            except Exception as error:  # report the run as failed, go on with the sweep
                result = Result(editors, viewers, args.duration, check=f"run failed: {type(error).__name__}: {error}")
            print(describe(result), flush=True)
            results.append(result)
    print()
    served_by = "gunicorn (gevent)" if args.gunicorn else "flask serve (threads)"
    print(f"Co-editing benchmark, {words:,}-word working text, {served_by}, {dt.date.today().isoformat()}:")
    print(table(results))
    print(
        f"\nTotal benchmark time: {time.perf_counter() - began:.0f} s (Python {sys.version.split()[0]}, {sys.platform})"
    )
    failed = [r for r in results if not r.check.startswith("ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
