"""Read and write y-protocols awareness updates, enough to track and remove each client's presence."""

from __future__ import annotations

from pycrdt import Decoder, Encoder


def read_clients(update: bytes) -> dict[int, tuple[int, bool]]:
    """Return {client id: (clock, present)} from an awareness update.

    Raises:
        ValueError: when the bytes are not an awareness update.
    """
    decoder = Decoder(update)
    clients: dict[int, tuple[int, bool]] = {}
    try:
        count = decoder.read_var_uint()
        if count > 1000:
            raise ValueError("too many clients in one awareness update")
        for _ in range(count):
            client_id = decoder.read_var_uint()
            clock = decoder.read_var_uint()
            state = decoder.read_var_string()
            clients[client_id] = (clock, state not in ("", "null"))
    except (RuntimeError, IndexError) as error:  # pycrdt's decoder raises these on short input
        raise ValueError("not an awareness update") from error
    if decoder.length != 0:
        raise ValueError("not an awareness update: truncated or trailing bytes")
    return clients


def removal_update(clocks: dict[int, int]) -> bytes:
    """Encode an update that marks these clients as gone (state null, clock advanced)."""
    encoder = Encoder()
    encoder.write_var_uint(len(clocks))
    for client_id, clock in clocks.items():
        encoder.write_var_uint(client_id)
        encoder.write_var_uint(clock + 1)
        encoder.write_var_string("null")
    return encoder.to_bytes()
