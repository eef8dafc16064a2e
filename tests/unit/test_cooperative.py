"""Long CPU-bound loops give way to other greenlets under gevent (app/cooperative.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from app import cooperative
from app.drafting.clauses import split_clauses
from app.drafting.diffing import PAUSE_EVERY_CLAUSES, diff_clauses
from tests.conftest import ROOT


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    monkeypatch.setattr(cooperative, "pause", lambda: counted.append(1))
    return counted


def test_pausing_yields_every_item_in_order_and_pauses_after_each_group(pauses: list[int]) -> None:
    assert list(cooperative.pausing(range(25), every=10)) == list(range(25))
    assert len(pauses) == 2


def test_diffing_many_clauses_pauses_between_them(pauses: list[int]) -> None:
    clauses = 3 * PAUSE_EVERY_CLAUSES
    old = split_clauses("".join(f"## Clause {n} {{#c-{n}}}\n\nOld text {n}.\n\n" for n in range(clauses)))
    new = split_clauses("".join(f"## Clause {n} {{#c-{n}}}\n\nNew text {n}.\n\n" for n in range(clauses)))

    diffs = diff_clauses(old, new)

    assert [d.status for d in diffs] == ["changed"] * clauses
    assert len(pauses) == 3


def test_under_gevent_other_greenlets_run_during_a_pausing_loop() -> None:
    # A fresh interpreter: gevent must patch the standard library before anything else is imported.
    script = textwrap.dedent(
        """
        from gevent import monkey
        monkey.patch_all()
        import time
        import gevent
        from app.cooperative import pausing

        ticks = []
        def ticker():
            while True:
                ticks.append(1)
                time.sleep(0)
        other = gevent.spawn(ticker)
        gevent.sleep(0)
        before = len(ticks)
        total = 0
        for n in pausing(range(2_000), every=20):
            total += sum(range(200))   # CPU-bound: never waits for I/O
        during = len(ticks) - before
        other.kill()
        print(during)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    # 100 pauses in the loop: the other greenlet ran at each of them.
    assert int(completed.stdout.strip()) >= 100
