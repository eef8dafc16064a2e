"""The CRDT engine and the diff-to-CRDT bridge, on pycrdt alone: convergence, whole-text writes, refusals."""

from __future__ import annotations

import base64
import json
import random
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Awareness, Doc, merge_updates

from app.collab import awareness as awareness_codec
from app.collab import engine, hub

# Multi-byte text everywhere: pycrdt counts positions in UTF-8 bytes, Python in code points.
BASE_TEXT = "Providers shall document åäö models 😀 and respect opt-outs 👩‍👩‍👧 🇸🇪.\nSkål!"
FLAVOURS = ["å", "ä", "ö", "😀", "👩‍👩‍👧", "🇸🇪", "ß", "e\u0301", "漢", "x"]
# A token is one insert call, so it is a single CRDT item: edits elsewhere can never split it.
TOKEN = re.compile(r"⟦[^⟦⟧]*⟧")


def byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def doc_with(state: bytes, client_id: int | None = None) -> Doc:
    doc = Doc(client_id=client_id) if client_id is not None else engine.new_doc()
    engine.text_root(doc)
    doc.apply_update(state)
    return doc


# One shared initial state and fixed client ids, so that a failing example replays exactly.
INITIAL = engine.initial_state(BASE_TEXT)


def state_of(doc: Doc) -> tuple[bytes, str]:
    return doc.get_state(), engine.text_of(doc)


# --- (a) convergence under loss, duplication and reordering ---------------------------------------


@dataclass
class Replica:
    doc: Doc
    inbox: list[bytes] = field(default_factory=list)


@dataclass
class Network:
    replicas: list[Replica]
    log: list[bytes] = field(default_factory=list)
    inserted: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    counter: int = 0


def _token_spans(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in TOKEN.finditer(text)]


def _insert(network: Network, data: st.DataObject, index: int) -> bytes:
    doc = network.replicas[index].doc
    text = engine.text_of(doc)
    spans = _token_spans(text)
    # Never inside a token: a token inserted at a boundary stays whole.
    boundaries = [i for i in range(len(text) + 1) if not any(start < i < end for start, end in spans)]
    at = data.draw(st.sampled_from(boundaries), label="insert at")
    flavour = data.draw(st.sampled_from(FLAVOURS), label="flavour")
    network.counter += 1
    token = f"⟦r{index}n{network.counter}{flavour}⟧"
    before = doc.get_state()
    engine.text_root(doc).insert(byte_offset(text, at), token)
    network.inserted.add(token)
    return doc.get_update(before)


def _delete(network: Network, data: st.DataObject, index: int) -> bytes | None:
    doc = network.replicas[index].doc
    text = engine.text_of(doc)
    if not text:
        return None
    start = data.draw(st.integers(0, len(text) - 1), label="delete from")
    end = data.draw(st.integers(start + 1, min(len(text), start + 12)), label="delete to")
    # Widen to whole tokens, so a token is either present whole or deleted whole.
    for span_start, span_end in _token_spans(text):
        if span_start < end and start < span_end:
            start, end = min(start, span_start), max(end, span_end)
            network.deleted.add(text[span_start:span_end])
    before = doc.get_state()
    del engine.text_root(doc)[byte_offset(text, start) : byte_offset(text, end)]
    return doc.get_update(before)


def _broadcast(network: Network, data: st.DataObject, sender: int, update: bytes) -> None:
    network.log.append(update)
    for index, replica in enumerate(network.replicas):
        if index == sender:
            continue
        copies = data.draw(st.sampled_from([0, 1, 1, 1, 2]), label="copies delivered")  # 0 = lost
        replica.inbox.extend([update] * copies)


def _deliver_one(network: Network, data: st.DataObject) -> None:
    waiting = [index for index, replica in enumerate(network.replicas) if replica.inbox]
    if not waiting:
        return
    replica = network.replicas[data.draw(st.sampled_from(waiting), label="receiver")]
    position = data.draw(st.integers(0, len(replica.inbox) - 1), label="which message")  # any order
    replica.doc.apply_update(replica.inbox.pop(position))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), count=st.integers(2, 4), steps=st.integers(1, 40))
def test_replicas_converge_despite_loss_duplication_and_reordering(data, count, steps):
    initial = INITIAL
    network = Network([Replica(doc_with(initial, client_id=1000 + index)) for index in range(count)])

    for _ in range(steps):
        action = data.draw(st.sampled_from(["insert", "insert", "delete", "deliver", "deliver"]), label="action")
        if action == "deliver":
            _deliver_one(network, data)
            continue
        sender = data.draw(st.integers(0, count - 1), label="editor")
        update = _insert(network, data, sender) if action == "insert" else _delete(network, data, sender)
        if update:
            _broadcast(network, data, sender, update)
    # Some of what is still in flight arrives (in any order), the rest is lost...
    for replica in network.replicas:
        data.draw(st.randoms(use_true_random=False), label="shuffle").shuffle(replica.inbox)
        keep = data.draw(st.integers(0, len(replica.inbox)), label="delivered at the end")
        for update in replica.inbox[:keep]:
            replica.doc.apply_update(update)
        replica.inbox.clear()
    # ...and a state-vector sync recovers it: each replica pulls what it misses from every other.
    for receiver in network.replicas:
        for sender in network.replicas:
            if sender is not receiver:
                receiver.doc.apply_update(sender.doc.get_update(receiver.doc.get_state()))

    texts = [engine.text_of(replica.doc) for replica in network.replicas]
    assert len(set(texts)) == 1, texts
    text = texts[0]
    for token in network.inserted - network.deleted:
        assert text.count(token) == 1, (token, text)
    for token in network.deleted:
        assert token not in text, (token, text)
    # The server rebuilds a document from its snapshot and the logged updates (here in causal order).
    assert engine.text_of(engine.doc_from(initial, network.log)) == text
    if network.log:
        assert engine.text_of(engine.doc_from(initial, [merge_updates(*network.log)])) == text
    # A full-state update from any replica rebuilds the same text (what a joining client receives).
    assert engine.text_of(engine.doc_from(None, [network.replicas[-1].doc.get_update()])) == text


def test_initial_state_is_shared_so_replicas_do_not_double_the_text():
    state = engine.initial_state(BASE_TEXT)
    left, right = doc_with(state), doc_with(state)
    left.apply_update(right.get_update())
    right.apply_update(left.get_update())
    assert engine.text_of(left) == engine.text_of(right) == BASE_TEXT
    assert engine.text_of(engine.doc_from(engine.initial_state(""))) == ""


def _history(seed: int, editors: int = 2, edits: int = 16) -> tuple[list[bytes], str]:
    """A causal history of small edits by several replicas that see each other's edits at random times."""
    rng = random.Random(seed)
    docs = [doc_with(INITIAL, client_id=2000 + index) for index in range(editors)]
    unseen: list[list[bytes]] = [[] for _ in docs]
    log: list[bytes] = []
    for number in range(edits):
        index = rng.randrange(editors)
        doc = docs[index]
        while unseen[index] and rng.random() < 0.6:
            doc.apply_update(unseen[index].pop(0))
        text = engine.text_of(doc)
        before = doc.get_state()
        if rng.random() < 0.75 or len(text) < 2:
            at = rng.randint(0, len(text))
            engine.text_root(doc).insert(byte_offset(text, at), f"⟦{index}.{number}ö⟧")
        else:
            at = rng.randrange(len(text) - 1)
            del engine.text_root(doc)[byte_offset(text, at) : byte_offset(text, at + 1)]
        log.append(doc.get_update(before))
        for other in range(editors):
            if other != index:
                unseen[other].append(log[-1])
    return log, engine.text_of(engine.doc_from(INITIAL, log))


def test_rebuilding_from_the_log_in_any_order_minimal_case():
    """doc_from promises "the updates logged after it (in any order)": the log's id order is commit order,
    which is not causal order when one connection's pipelined updates are handled by racing threads.

    Client 2 types "a"; client 1 types "b", then "c" after it, then "d" after "a". The server gets
    a, c, d, b (c and d wait for b). Every update is there, so the text must be "bcad".
    """
    initial = engine.initial_state("")
    one, two = doc_with(initial, client_id=1), doc_with(initial, client_id=2)

    def edit(doc: Doc, at: int, chunk: str) -> bytes:
        before = doc.get_state()
        engine.text_root(doc).insert(at, chunk)
        return doc.get_update(before)

    a = edit(two, 0, "a")
    one.apply_update(a)
    b = edit(one, 0, "b")
    c = edit(one, 1, "c")
    d = edit(one, 3, "d")
    assert engine.text_of(one) == "bcad"
    assert engine.text_of(engine.doc_from(initial, [a, b, c, d])) == "bcad"

    assert engine.text_of(engine.doc_from(initial, [a, c, d, b])) == "bcad"


def _shuffled(log: list[bytes], seed: int) -> list[bytes]:
    shuffled = list(log)
    random.Random(seed).shuffle(shuffled)
    return shuffled


def test_rebuilding_from_the_log_in_any_order_gives_the_same_text():
    histories = [(seed, *_history(seed)) for seed in range(40)]

    wrong = [
        seed
        for seed, log, expected in histories
        if engine.text_of(engine.doc_from(INITIAL, _shuffled(log, seed))) != expected
    ]

    assert wrong == [], f"{len(wrong)} of {len(histories)} shuffled logs rebuild another text (seeds {wrong})"


def test_a_log_merged_before_it_is_applied_rebuilds_the_same_text_in_any_order():
    # The direction of the fix: pycrdt's merge_updates orders the structs itself.
    for seed in range(40):
        log, expected = _history(seed)
        assert engine.text_of(engine.doc_from(INITIAL, [merge_updates(*_shuffled(log, seed))])) == expected


def test_folding_keeps_an_update_that_waits_for_its_predecessor():
    """A compaction folds the snapshot and the log into one snapshot. An update whose predecessor has not been
    logged yet is in no state vector; it must survive the fold and take its place once the predecessor comes."""
    initial = engine.initial_state("")
    one, two = doc_with(initial, client_id=1), doc_with(initial, client_id=2)
    before = one.get_state()
    engine.text_root(one).insert(0, "b")
    b = one.get_update(before)
    before = one.get_state()
    engine.text_root(one).insert(1, "c")
    c = one.get_update(before)
    before = two.get_state()
    engine.text_root(two).insert(0, "a")
    a = two.get_update(before)

    snapshot, text = engine.fold(initial, [a, c], with_text=True)

    assert text == "a"  # c waits for b
    assert engine.text_of(engine.doc_from(snapshot, [b])) in {"abc", "bca"}
    assert engine.text_of(engine.doc_from(snapshot, [b])) == engine.text_of(engine.doc_from(initial, [a, b, c]))
    # Folding again (the next compaction) keeps it too, and without the text costs nothing to ask.
    again, no_text = engine.fold(snapshot, [], with_text=False)
    assert no_text == ""
    assert engine.text_of(engine.doc_from(again, [b])) == engine.text_of(engine.doc_from(initial, [a, b, c]))


def test_folding_a_shuffled_log_gives_the_same_text_as_rebuilding_it():
    for seed in range(20):
        log, expected = _history(seed)
        snapshot, text = engine.fold(INITIAL, _shuffled(log, seed), with_text=True)
        assert text == expected
        assert engine.text_of(engine.doc_from(snapshot)) == expected


# --- (b) the diff-to-CRDT bridge ------------------------------------------------------------------

EDGE = ["😀", "👩‍👩‍👧", "🇸🇪", "👍🏽", "\u200d", "\ufe0f", "e\u0301", "\U0010ffff", "\x00", "\r\n", "\t"]
characters = st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(EDGE))
texts = st.lists(characters, max_size=40).map("".join)
vocabulary = st.sampled_from(["shall", "may", " ", "\n", "å", "ä", "ö", "😀", "🇸🇪", "ab", "ba", "."])
related = st.lists(vocabulary, max_size=25).map("".join)
pairs = st.one_of(st.tuples(texts, texts), st.tuples(related, related))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs)
def test_replace_text_makes_the_text_exactly_the_new_one(pair):
    old, new = pair
    initial = engine.initial_state(old)
    doc = doc_with(initial)

    update = engine.replace_text(doc, new)

    assert engine.text_of(doc) == new
    assert (update == b"") == (old == new)
    # The update alone carries the change to any replica of the old text.
    other = doc_with(initial)
    if update:
        other.apply_update(update)
    assert engine.text_of(other) == new
    # And a second write from there still lands exactly.
    engine.replace_text(doc, old)
    assert engine.text_of(doc) == old


SEPARATOR = "\n\n§§\n\n"
parts = st.lists(st.one_of(characters.filter(lambda c: c not in "§⟦⟧"), vocabulary), max_size=20).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=parts,
    suffix=parts,
    new_part=parts,
    replace_first=st.booleans(),
    at=st.floats(0, 1),
    flavour=st.sampled_from(FLAVOURS),
)
def test_replace_text_keeps_a_concurrent_edit_elsewhere(prefix, suffix, new_part, replace_first, at, flavour):
    initial = engine.initial_state(prefix + SEPARATOR + suffix)
    writer, live = doc_with(initial), doc_with(initial)
    token = f"⟦live{flavour}⟧"
    # The live editor inserts into the half the whole-text writer leaves alone.
    if replace_first:
        index = len(prefix) + len(SEPARATOR) + round(at * len(suffix))
        expected = new_part + SEPARATOR + suffix[: index - len(prefix) - len(SEPARATOR)] + token
        expected += suffix[index - len(prefix) - len(SEPARATOR) :]
        written = new_part + SEPARATOR + suffix
    else:
        index = round(at * len(prefix))
        expected = prefix[:index] + token + prefix[index:] + SEPARATOR + new_part
        written = prefix + SEPARATOR + new_part
    base = prefix + SEPARATOR + suffix
    before = live.get_state()
    engine.text_root(live).insert(byte_offset(base, index), token)
    live_update = live.get_update(before)

    written_update = engine.replace_text(writer, written)

    writer.apply_update(live_update)
    if written_update:
        live.apply_update(written_update)
    assert engine.text_of(writer) == engine.text_of(live) == expected


# --- (c) refusing what cannot be an update --------------------------------------------------------


def _valid_update() -> tuple[bytes, bytes]:
    initial = engine.initial_state(BASE_TEXT)
    doc = doc_with(initial)
    before = doc.get_state()
    engine.text_root(doc).insert(3, "åäö 😀 inserted")
    return initial, doc.get_update(before)


@pytest.mark.parametrize(
    "data",
    [None, "text", 42, 4.2, True, [1, 2], {"update": b"x"}, ("a",)],
    ids=["none", "str", "int", "float", "bool", "list", "dict", "tuple"],
)
def test_check_update_refuses_what_is_not_binary(data):
    with pytest.raises(engine.InvalidUpdate, match="binary"):
        engine.check_update(data)


@pytest.mark.parametrize("data", [b"", bytearray(), memoryview(b"")], ids=["bytes", "bytearray", "memoryview"])
def test_check_update_refuses_empty_updates(data):
    with pytest.raises(engine.InvalidUpdate, match="empty"):
        engine.check_update(data)


def test_check_update_refuses_oversized_updates_and_accepts_the_limit():
    with pytest.raises(engine.InvalidUpdate, match="256 KB"):
        engine.check_update(b"\x00" * (engine.MAX_UPDATE_BYTES + 1))
    limit = b"\x01" * engine.MAX_UPDATE_BYTES
    assert engine.check_update(limit) == limit


def test_check_update_returns_plain_bytes():
    _, update = _valid_update()
    for form in (update, bytearray(update), memoryview(update)):
        checked = engine.check_update(form)
        assert type(checked) is bytes
        assert checked == update


def test_an_oversized_update_never_reaches_the_document():
    initial, _ = _valid_update()
    doc = doc_with(initial)
    before = state_of(doc)
    big = engine.initial_state("x" * (engine.MAX_UPDATE_BYTES + 10))
    with pytest.raises(engine.InvalidUpdate):
        engine.apply_checked(doc, engine.check_update(big))
    assert state_of(doc) == before


@pytest.mark.parametrize("cut", [1, 2, 5, 10, -1])
def test_apply_checked_refuses_a_truncated_update_and_leaves_the_doc_unchanged(cut):
    initial, update = _valid_update()
    doc = doc_with(initial)
    before, full = state_of(doc), doc.get_update()
    with pytest.raises(engine.InvalidUpdate, match="decoded"):
        engine.apply_checked(doc, update[:cut])
    assert state_of(doc) == before
    assert doc.get_update() == full


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(min_size=1, max_size=64), st.binary(min_size=1, max_size=8).map(lambda b: b + b"\xff" * 9)))
def test_apply_checked_refuses_garbage_or_applies_it_never_half(garbage):
    initial, _ = _valid_update()
    doc = doc_with(initial)
    before, full = state_of(doc), doc.get_update()
    try:
        engine.apply_checked(doc, engine.check_update(garbage))
    except engine.InvalidUpdate:
        assert state_of(doc) == before
        assert doc.get_update() == full
    # Whatever happened, the document is still usable.
    engine.text_root(doc).insert(0, "ok")
    assert engine.text_of(doc).startswith("ok")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.binary(min_size=1, max_size=3))
def test_apply_checked_refuses_a_corrupted_update_or_leaves_a_usable_doc(seed, noise):
    initial, update = _valid_update()
    corrupted = bytearray(update)
    rng = random.Random(seed)
    for byte in noise:
        corrupted[rng.randrange(len(corrupted))] = byte
    doc = doc_with(initial)
    before = state_of(doc)
    try:
        engine.apply_checked(doc, bytes(corrupted))
    except engine.InvalidUpdate:
        assert state_of(doc) == before
    assert isinstance(engine.text_of(doc), str)


# --- (d) awareness --------------------------------------------------------------------------------


def _var_uint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(0x80 | (number & 0x7F))
        number >>= 7
    out.append(number)
    return bytes(out)


def _awareness_update(states: dict[int, tuple[int, str]]) -> bytes:
    """Encode as y-protocols (lib0) does: a var string is its UTF-8 byte length, then the bytes.

    Not with pycrdt's Encoder: its write_var_string writes the length in characters, not bytes.
    """
    out = bytearray(_var_uint(len(states)))
    for client_id, (clock, state) in states.items():
        encoded = state.encode("utf-8")
        out += _var_uint(client_id) + _var_uint(clock) + _var_uint(len(encoded)) + encoded
    return bytes(out)


def test_read_clients_reads_a_real_awareness_update_and_its_removal():
    doc = Doc()
    mine = Awareness(doc)
    # ASCII only: pycrdt's own encoder writes string lengths in characters (the browser's lib0 in bytes).
    mine.set_local_state({"user": {"name": "Asa Oberg"}, "cursor": {"anchor": 3, "head": 9}})
    mine.set_local_state_field("clause", "c-2")
    update = mine.encode_awareness_update([doc.client_id])

    clients = awareness_codec.read_clients(update)
    assert clients == {doc.client_id: (2, True)}

    theirs = Awareness(Doc())
    theirs.apply_awareness_update(update, "remote")
    assert doc.client_id in theirs.states
    removal = awareness_codec.removal_update({client: clock for client, (clock, _) in clients.items()})
    assert awareness_codec.read_clients(removal) == {doc.client_id: (3, False)}
    theirs.apply_awareness_update(removal, "remote")
    assert doc.client_id not in theirs.states


client_ids = st.integers(0, 2**53 - 1)
clocks = st.integers(0, 2**32)
json_states = st.sampled_from(['{"user":{"name":"Åsa 😀"}}', "{}", '{"cursor":null}', "[1,2]"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(client_ids, st.tuples(clocks, st.one_of(json_states, st.sampled_from(["null", ""]))), max_size=8)
)
def test_read_clients_round_trips_encoded_states(states):
    clients = awareness_codec.read_clients(_awareness_update(states))
    assert clients == {client: (clock, state not in ("null", "")) for client, (clock, state) in states.items()}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(client_ids, clocks, max_size=20))
def test_removal_update_round_trips(clocks_by_client):
    assert awareness_codec.read_clients(awareness_codec.removal_update(clocks_by_client)) == {
        client: (clock + 1, False) for client, clock in clocks_by_client.items()
    }


def test_read_clients_refuses_too_many_clients():
    with pytest.raises(ValueError, match="too many"):
        awareness_codec.read_clients(_awareness_update({n: (1, "{}") for n in range(1001)}))


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x80", b"\x01", b"\x01\x05", b"\x02\x05\x01\x02{}", b"\x01\x05\x01\x03\xff\xfe\xfd"],
    ids=["empty", "unterminated-varint", "count-only", "no-clock", "second-client-missing", "not-utf8"],
)
def test_read_clients_refuses_malformed_updates_with_value_error(garbage):
    # The documented contract (and what the socket handler catches to answer 400) is ValueError.
    with pytest.raises(ValueError):  # noqa: PT011 - the type is the contract here
        awareness_codec.read_clients(garbage)


def _states_after(updates: list[bytes], prior: bytes | None) -> dict[int, object]:
    receiver = Awareness(Doc())
    if prior is not None:
        receiver.apply_awareness_update(prior, "server")
    for update in updates:
        receiver.apply_awareness_update(update, "server")
    return {client: state for client, state in receiver.states.items() if client != receiver.client_id}


# Few clients and clocks, so that the same client often appears at the same clock with another state.
few_clients = st.integers(1, 4)
few_clocks = st.integers(0, 4)
entry_states = st.sampled_from(['{"user":{"name":"Åsa 😀"}}', '{"cursor":{"anchor":1}}', "null", ""])
small_updates = st.dictionaries(few_clients, st.tuples(few_clocks, entry_states), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(small_updates.map(_awareness_update), min_size=1, max_size=8), st.one_of(st.none(), small_updates))
def test_merged_presence_leaves_a_receiver_where_the_updates_in_order_would(updates, prior):
    # A receiver that already knew some clients (prior) must end the same too: clocks decide, not arrival.
    prior_update = _awareness_update(prior) if prior is not None else None
    merged = awareness_codec.merge(updates)

    assert _states_after([merged], prior_update) == _states_after(updates, prior_update)
    assert set(awareness_codec.read_clients(merged)) == {
        client for update in updates for client in awareness_codec.read_clients(update)
    }


def test_merged_presence_writes_a_removal_as_json_null():
    # lib0 in the browser JSON.parses every state: "" would throw there.
    merged = awareness_codec.merge([_awareness_update({5: (3, "")})])
    assert awareness_codec.entries(merged) == [(5, 3, "null")]


def test_merging_presence_refuses_a_malformed_update():
    with pytest.raises(ValueError):  # noqa: PT011 - the type is the contract here
        awareness_codec.merge([_awareness_update({1: (1, "{}")}), b"\x01\x05"])


def test_a_frame_carries_the_merged_update_and_presence_as_base64_text():
    writers = [Doc(client_id=n) for n in (1, 2)]
    updates = []
    for doc, words in zip(writers, ("Providers shall ", "document åäö 😀"), strict=True):
        before = doc.get_state()
        engine.text_root(doc).insert(0, words)
        updates.append(doc.get_update(before))
    presence = [_awareness_update({7: (1, '{"cursor":1}')}), _awareness_update({7: (2, '{"cursor":2}')})]

    payload = hub.frame_payload(42, updates, presence)

    # JSON text all through: no binary attachment, so one WebSocket message per member.
    assert json.loads(json.dumps(payload)) == payload
    reader, expected = Doc(), Doc()
    reader.apply_update(base64.b64decode(payload["update"], validate=True))
    for update in updates:
        expected.apply_update(update)
    assert engine.text_of(reader) == engine.text_of(expected)
    assert awareness_codec.entries(base64.b64decode(payload["awareness"], validate=True)) == [(7, 2, '{"cursor":2}')]
    assert payload["code"] == 42
    assert hub.frame_payload(42, [], presence).keys() == {"code", "awareness"}
    assert hub.frame_payload(42, updates[:1], []).keys() == {"code", "update"}


@pytest.mark.parametrize(
    ("members", "seconds"), [(0, 0.03), (150, 0.03), (240, 0.03), (320, 0.04), (400, 0.05), (5_000, 0.05)]
)
def test_frames_come_less_often_only_when_a_process_serves_many_members(members, seconds):
    # 150 editors keep 30-ms frames (5,000 sends a second); 200 editors and 200 viewers get one every 50 ms.
    assert hub.frame_interval(members) == pytest.approx(seconds)
