"""Read, merge and write y-protocols awareness updates: enough to track, relay and remove each client's presence."""

from __future__ import annotations

from pycrdt import Decoder, write_var_uint

MAX_CLIENTS = 1000
# The state of a client that left: JSON null (what y-protocols writes), or empty (which pycrdt also reads so).
_REMOVED = ("", "null")


def entries(update: bytes) -> list[tuple[int, int, str]]:
    """Return (client id, clock, state JSON) for each client in an awareness update.

    Raises:
        ValueError: when the bytes are not an awareness update.
    """
    decoder = Decoder(update)
    try:
        count = decoder.read_var_uint()
        if count > MAX_CLIENTS:
            raise ValueError("too many clients in one awareness update")
        found = [(decoder.read_var_uint(), decoder.read_var_uint(), decoder.read_var_string()) for _ in range(count)]
    except (RuntimeError, IndexError) as error:  # pycrdt's decoder raises these on short input
        raise ValueError("not an awareness update") from error
    if decoder.length != 0:
        raise ValueError("not an awareness update: truncated or trailing bytes")
    return found


def encode(states: dict[int, tuple[int, str]]) -> bytes:
    """Encode {client id: (clock, state JSON)} as an awareness update."""
    # Not pycrdt's Encoder.write_var_string: it writes a string's length in characters, and lib0 (the
    # browser) reads it as a length in bytes, so any non-ASCII name would break every presence after it.
    parts = [write_var_uint(len(states))]
    for client_id, (clock, state) in states.items():
        encoded = state.encode("utf-8")
        parts += [write_var_uint(client_id), write_var_uint(clock), write_var_uint(len(encoded)), encoded]
    return b"".join(parts)


def read_clients(update: bytes) -> dict[int, tuple[int, bool]]:
    """Return {client id: (clock, present)} from an awareness update.

    Raises:
        ValueError: when the bytes are not an awareness update.
    """
    return {client_id: (clock, state not in _REMOVED) for client_id, clock, state in entries(update)}


def merge(updates: list[bytes]) -> bytes:
    """One awareness update that leaves a receiver where applying all of `updates` in order would.

    Each client keeps its latest state: the highest clock, and at an equal clock a removal, as y-protocols'
    `applyAwarenessUpdate` decides. Sending one message per frame instead of one per presence change keeps
    a frame's cost to each receiver constant, however many people moved their cursor meanwhile.

    Raises:
        ValueError: when one of the updates is not an awareness update.
    """
    latest: dict[int, tuple[int, str]] = {}
    for update in updates:
        for client_id, clock, state in entries(update):
            known = latest.get(client_id)
            if known is None or clock > known[0] or (clock == known[0] and state in _REMOVED):
                # A removal always goes out as "null": the browser's JSON.parse("") would throw and drop
                # every presence after it in the same update.
                latest[client_id] = (clock, "null" if state in _REMOVED else state)
    return encode(latest)


def removal_update(clocks: dict[int, int]) -> bytes:
    """Encode an update that marks these clients as gone (state null, clock advanced)."""
    return encode({client_id: (clock + 1, "null") for client_id, clock in clocks.items()})
