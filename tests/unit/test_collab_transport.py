"""A binary Socket.IO packet leaves as several frames (a header, then its attachments); nothing sent to the same
connection at the same time may land between them, or the client reads it as an attachment."""

from __future__ import annotations

import threading
import time

from flask import Flask
from socketio import packet

from app.collab.transport import EventSessionInterface, serialise_direct_sends


class _Engine:
    def __init__(self) -> None:
        self.frames: list[object] = []

    def send(self, eio_sid: str, data: object) -> None:
        self.frames.append(data)
        time.sleep(0.0002)  # a socket write: gives the other thread its chance

    def on(self, event: str, handler: object) -> None:
        pass


class _Server:
    def __init__(self) -> None:
        self.eio = _Engine()

    def _handle_eio_disconnect(self, eio_sid: str, *args: object) -> None:
        pass


def test_a_one_frame_packet_never_lands_between_a_binary_packets_header_and_attachment():
    server = _Server()
    serialise_direct_sends(server)  # type: ignore[arg-type]
    binary = packet.Packet(packet.EVENT, namespace="/collab", data=["update", b"\x01\x02"])
    text = packet.Packet(packet.ACK, namespace="/collab", id=1, data=[{"ok": True}])
    assert len(binary.encode()) == 2  # the header and one attachment
    rounds = 300

    def send(pkt: packet.Packet) -> None:
        for _ in range(rounds):
            server._send_packet("eio-1", pkt)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=send, args=(p,)) for p in (binary, text)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    frames = server.eio.frames
    assert len(frames) == 3 * rounds
    headers = [i for i, frame in enumerate(frames) if isinstance(frame, str) and frame.startswith("5")]
    assert len(headers) == rounds
    assert all(isinstance(frames[i + 1], bytes) for i in headers), "a frame landed between header and attachment"


def test_an_event_gets_the_connections_kept_session_without_decoding_the_cookie_again():
    app = Flask(__name__)
    app.secret_key = "transport-test"
    interface = EventSessionInterface()
    cookie = interface.get_signing_serializer(app).dumps({"_user_id": "7:1"})
    headers = {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={cookie}"}
    kept = {"_user_id": "7:1", "kept": True}

    with app.test_request_context(headers=headers) as http:
        decoded = interface.open_session(app, http.request)
    with app.test_request_context(headers=headers, environ_base={"saved_session": kept}) as event:
        # A decode would fail with this serializer: the kept copy must be used as it is.
        interface.get_signing_serializer = None  # type: ignore[method-assign]
        reused = interface.open_session(app, event.request)

    assert dict(decoded or {}) == {"_user_id": "7:1"}
    assert reused is kept
