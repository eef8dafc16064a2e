"""Compaction's fold in a child process: the same result as in the server, and the server's own fold when the
child is gone or cannot fold."""

from __future__ import annotations

import io
import os
import sys

from app.collab import engine, folding
from tests.unit.test_collab_engine import INITIAL, _history, _shuffled


def test_the_child_folds_exactly_as_the_server_would():
    folder = folding.Folder()
    try:
        for seed in range(5):
            log, expected = _history(seed)
            updates = _shuffled(log, seed)
            assert folder.fold(INITIAL, updates, with_text=True) == engine.fold(INITIAL, updates, with_text=True)
            snapshot, text = folder.fold(INITIAL, updates, with_text=False)
            assert text == ""
            assert engine.text_of(engine.doc_from(snapshot)) == expected
        assert (folder.in_child, folder.in_process) == (10, 0)
    finally:
        folder.close()


def test_a_child_that_died_is_replaced_at_the_next_fold():
    folder = folding.Folder()
    log, expected = _history(1)
    try:
        folder.fold(INITIAL, log, with_text=False)
        child = folder._child
        assert child is not None
        child.kill()
        child.wait(5)

        assert folder.fold(INITIAL, log, with_text=True)[1] == expected

        assert (folder.in_child, folder.in_process) == (2, 0)
        assert folder._child is not None
        assert folder._child.pid != child.pid
    finally:
        folder.close()


def test_when_the_child_fails_the_server_folds_itself():
    # A child that exits at once: the request finds the pipe closed.
    folder = folding.Folder(command=[sys.executable, "-c", "pass"])
    log, expected = _history(3)
    try:
        snapshot, text = folder.fold(INITIAL, log, with_text=True)

        assert text == expected
        assert engine.text_of(engine.doc_from(snapshot)) == expected
        assert (folder.in_child, folder.in_process) == (0, 1)
    finally:
        folder.close()


def test_a_request_that_cannot_be_folded_is_answered_with_its_error_and_the_child_goes_on():
    requests, answers = io.BytesIO(), io.BytesIO()
    folding._write_request(requests, b"\x01\x02 not a CRDT update", [], True)
    log, expected = _history(2)
    folding._write_request(requests, INITIAL, log, True)
    requests.seek(0)

    folding.serve(requests, answers)

    answers.seek(0)
    failed, _, error = folding._read_answer(answers)
    folded, _, text = folding._read_answer(answers)
    assert not failed
    assert error
    assert folded
    assert text.decode() == expected


def test_a_child_that_never_answers_is_killed_and_left_alone_for_a_while(monkeypatch):
    monkeypatch.setattr(folding, "ANSWER_SECONDS", 0.5)
    stuck = [sys.executable, "-c", "import sys, time; sys.stdin.buffer.read(1); time.sleep(600)"]
    folder = folding.Folder(command=stuck)
    log, expected = _history(4)
    try:
        assert folder.fold(INITIAL, log, with_text=True)[1] == expected
        assert folder._child is None  # killed by the watchdog, then cleaned up
        # Within the back-off the server folds itself without starting another child.
        assert folder.fold(INITIAL, log, with_text=True)[1] == expected
        assert folder._child is None
        assert (folder.in_child, folder.in_process) == (0, 2)
    finally:
        folder.close()


def test_the_child_gives_way_to_its_server_on_a_shared_core():
    folder = folding.Folder()
    log, _ = _history(2)
    try:
        folder.fold(INITIAL, log, with_text=False)
        assert folder._child is not None
        expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + folding.BACKGROUND_NICENESS)
        assert os.getpriority(os.PRIO_PROCESS, folder._child.pid) == expected
    finally:
        folder.close()


def test_a_child_whose_server_has_gone_stops_quietly():
    class Gone(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            raise BrokenPipeError(32, "Broken pipe")

    requests = io.BytesIO()
    log, _ = _history(3)
    folding._write_request(requests, INITIAL, log, True)
    requests.seek(0)

    folding.serve(requests, Gone())  # returns instead of raising
