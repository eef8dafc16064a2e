"""Benchmark: tally a round of 100 clauses × 5,000 participants, in memory and from the database.

Run from the repository root:

    .venv/bin/python bench/tally.py                        # pure tallies, then SQLite, then PostgreSQL if reachable
    .venv/bin/python bench/tally.py --backends sqlite      # skip PostgreSQL
    .venv/bin/python bench/tally.py --backends none        # the pure tallies only
    .venv/bin/python bench/tally.py --runs 30 --budget 20  # more runs

The round: 5,000 participants in the nine stakeholder categories (civil society 20 %, GPAI providers 15 %,
downstream providers 15 %, academia 12 %, ...), each answering each of 100 clauses: 500,000 positions. Each
clause has its own level of support (from a near-even split to near-unanimity); on one clause in five the
GPAI providers mostly oppose while the others mostly support, so that bridging and divergence have work to do.
One answer in ten is an abstention; one supporter in three asks for changes. On one clause in four, one
opposition in twenty is a serious objection; the chair's latest call on that clause has addressed all of them
on half of those clauses, and none on the others. Everything is drawn from a seeded generator (--seed), so
every run tallies the same round.

Measures:

- **tally**: `app.consensus.tally.tally()` over the 500,000 `Answer` tuples (counting them with
  `collections.Counter`, then tallying), and **tally_counted** over the groups a database GROUP BY gives for
  the same round (one row per clause, category and stance, plus one per serious objection). Target for both:
  ≤ 100 ms.
- **round_tally**: the whole `app.consensus.service.round_tally()` as a dashboard request runs it, in a fresh
  session each time (load the round, its version's clauses and the chair's calls, count the positions by
  GROUP BY, count the participants per category, tally), on a temporary SQLite database built with
  `create_app()` and the project's migrations, with the positions inserted in bulk. Then, to show where the
  time goes, its two big queries alone: `service.counted_answers()` (the GROUP BY and the serious objections)
  and the count of distinct participants per category (`service.participants_per_category()`).
- The same on PostgreSQL when it is reachable at 127.0.0.1:5432 (set BENCH_POSTGRES_URL to use another
  server): a scratch database `accord_bench_tally_<pid>` is created, migrated and dropped at the end, so
  nothing else is touched. After the bulk load the positions table is vacuumed and analysed, as autovacuum
  would do in service after so many inserts (without it the planner has no statistics and the covering index
  cannot be read alone).

Before timing, the database's tally is checked against the in-memory one: they must be equal, to the bit.

Figures are wall-clock medians, p95 (nearest rank) and minimums, in milliseconds, after one warm-up call.
The garbage collector runs as it would in a server, so its pauses show in the p95. The exit status is 1 when
a measure misses its target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from timing import Results  # noqa: E402 - bench/ is on sys.path when a benchmark runs

from app.accounts.models import StakeholderCategory  # noqa: E402
from app.consensus.tally import Answer, ClauseTally, Level, Stance, Thresholds, tally, tally_counted  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TARGET_MS = 100.0
THRESHOLDS = Thresholds()
CATEGORY_WEIGHTS = {
    StakeholderCategory.CIVIL_SOCIETY: 20,
    StakeholderCategory.GPAI_PROVIDER: 15,
    StakeholderCategory.DOWNSTREAM_PROVIDER: 15,
    StakeholderCategory.ACADEMIA: 12,
    StakeholderCategory.RIGHTS_HOLDER: 10,
    StakeholderCategory.INDEPENDENT_EXPERT: 10,
    StakeholderCategory.INDUSTRY_ASSOCIATION: 8,
    StakeholderCategory.PUBLIC_AUTHORITY: 5,
    StakeholderCategory.OTHER: 5,
}
INSERT_BATCH = 20_000


# --- the round -------------------------------------------------------------------------------------


class GeneratedRound:
    """The generated round: who is in which category, and every position, in insertion order."""

    def __init__(self, clauses: int, participants: int, seed: int) -> None:
        rng = random.Random(seed)
        self.keys = [f"c-{n:03d}" for n in range(1, clauses + 1)]
        self.categories = rng.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()), k=participants)
        # (clause, participant index, stance, serious objection, addressed)
        self.positions: list[tuple[str, int, Stance, bool, bool]] = []
        for number, key in enumerate(self.keys):
            support = 0.45 + 0.5 * rng.random()
            divergent = number % 5 == 2
            objected, addressed = number % 4 == 1, number % 8 == 1
            for participant, category in enumerate(self.categories):
                p = 0.15 if divergent and category is StakeholderCategory.GPAI_PROVIDER else support
                roll = rng.random()
                if roll < 0.1:
                    stance = Stance.ABSTAIN
                elif rng.random() < p:
                    stance = Stance.SUPPORT_WITH_CHANGES if rng.random() < 1 / 3 else Stance.SUPPORT
                else:
                    stance = Stance.OPPOSE
                serious = objected and stance is Stance.OPPOSE and rng.random() < 0.05
                self.positions.append((key, participant, stance, serious, serious and addressed))

    def answers(self) -> list[Answer]:
        return [
            Answer(key, self.categories[who].value, stance.value, serious, addressed)
            for key, who, stance, serious, addressed in self.positions
        ]

    def groups(self) -> list[tuple[Answer, int]]:
        """What `service.counted_answers` builds: GROUP BY rows, then each serious objection on its own."""
        counted = Counter(
            (key, self.categories[who].value, stance.value)
            for key, who, stance, serious, _ in self.positions
            if not serious
        )
        groups = [(Answer(*fields), number) for fields, number in counted.items()]
        groups += [
            (Answer(key, self.categories[who].value, stance.value, True, addressed), 1)
            for key, who, stance, serious, addressed in self.positions
            if serious
        ]
        return groups


# --- timing ----------------------------------------------------------------------------------------


# A measure stops early once its timed runs add up to this many seconds (but never below MIN_RUNS).
BUDGET_SECONDS = 10.0
MIN_RUNS = 5


def time_calls(fn: Callable[[], Any], runs: int, warmup: int = 1) -> list[float]:
    """Call fn warmup + up to `runs` times; return the timed runs in milliseconds."""
    for _ in range(warmup):
        fn()
    # Start each measure from a clean heap, then let the garbage collector run as it would in a server.
    gc.collect()
    samples: list[float] = []
    while len(samples) < runs and (len(samples) < MIN_RUNS or sum(samples) < BUDGET_SECONDS * 1000):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


# --- the database ----------------------------------------------------------------------------------


def postgres_unreachable() -> str | None:
    """Say why PostgreSQL cannot be used, or None when it can."""
    engine = create_engine(POSTGRES_ADMIN_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        return None
    except Exception as error:  # any failure to connect means: not reachable here
        return f"not reachable at {make_url(POSTGRES_ADMIN_URL).render_as_string()} ({type(error).__name__})"
    finally:
        engine.dispose()


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a scratch PostgreSQL database for this run, yield its URL, and drop it at the end."""
    name = f"accord_bench_tally_{os.getpid()}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def make_app(url: str, folder: str) -> Any:
    from flask_migrate import upgrade

    from app import create_app
    from app.db import db

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench-secret",
            "SEARCH_INDEX_DIR": f"{folder}/index",
            "SEARCH_INDEXER_THREAD": False,
            # The embedded defaults, whatever the environment says, so that no other service is needed.
            "SOCKETIO_MESSAGE_QUEUE": None,
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        db.session.remove()
    return app


def seed(app: Any, generated: GeneratedRound) -> int:
    """Store a code whose version has the round's clauses, a forum, the round, its positions and the chair's
    calls; return the round's id."""
    from app.accounts.models import WorkingGroup
    from app.consensus.models import ConsensusCall, Counting, Eligibility, Forum, ForumKind, Position, Round
    from app.db import db, utcnow
    from app.drafting import service as drafting

    markdown = "\n".join(
        f"## Clause {n} {{#{key}}}\n\nSignatories shall keep the measures of clause {n} under review.\n"
        for n, key in enumerate(generated.keys, start=1)
    )
    with app.app_context():
        session = db.session
        group = WorkingGroup(slug="wg-bench", name="Benchmark working group")
        session.add(group)
        session.flush()
        code = drafting.create_code(
            session, None, group=group, slug="bench-code", title="Benchmark code", language="en"
        )
        version = drafting.cut_version(session, None, code, label="Benchmark draft", markdown=markdown)
        forum = Forum(slug="bench-plenary", name="Benchmark plenary", kind=ForumKind.PLENARY, working_group=group)
        now = utcnow()
        t = THRESHOLDS
        round_ = Round(
            forum=forum, code=code, version=version, title="Benchmark round",
            opens_at=now - dt.timedelta(days=7), closes_at=now + dt.timedelta(days=7),
            clause_keys=generated.keys, eligibility=Eligibility.MEMBERS, counting=Counting.PERSON,
            consensus_support=t.consensus_support, rough_support=t.rough_support, category_floor=t.category_floor,
            min_participants=t.min_participants, divergence=t.divergence, min_category_answers=t.min_category_answers,
        )  # fmt: skip
        session.add_all([forum, round_])
        session.commit()
        round_id = round_.id
        assert [clause.key for clause in version.clauses] == generated.keys

        start = time.perf_counter()
        table = Position.__table__
        for first in range(0, len(generated.positions), INSERT_BATCH):
            rows = [
                {
                    "round_id": round_id,
                    "clause_key": key,
                    "participant_key": f"user:{who + 1}",
                    "user_id": None,
                    "category": generated.categories[who],
                    "organisation": None,
                    "stance": stance,
                    "serious_objection": serious,
                    "rationale": "It does not work for us." if stance is Stance.OPPOSE else "",
                    "comment_id": None,
                    "publish": False,
                    "revision": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for key, who, stance, serious, _ in generated.positions[first : first + INSERT_BATCH]
            ]
            session.execute(insert(table), rows)
        session.commit()
        inserted = time.perf_counter() - start

        # The chair's latest call on each clause lists the serious objections it addressed.
        addressed = {(key, f"user:{who + 1}") for key, who, _, serious, done in generated.positions if serious and done}
        handled: dict[str, list[dict[str, object]]] = {key: [] for key in generated.keys}
        serious_rows = session.execute(
            select(Position.id, Position.clause_key, Position.participant_key).where(
                Position.round_id == round_id, Position.serious_objection.is_(True)
            )
        )
        for position_id, key, participant in serious_rows:
            if (key, participant) in addressed:
                handled[key].append({"position_id": position_id, "handling": "Clarified in the next draft."})
        for key, objections in handled.items():
            for revision in (1, 2):
                session.add(
                    ConsensusCall(
                        round_id=round_id, clause_key=key, revision=revision, level=Level.ROUGH_CONSENSUS,
                        outcome=f"Call {revision} on {key}.", objections=objections if revision == 2 else [],
                    )
                )  # fmt: skip
        session.commit()
        stored = session.scalar(select(func.count()).select_from(table))
        print(
            f"  {stored:,} positions inserted in {inserted:.1f} s ({stored / inserted:,.0f} rows/s), "
            f"{len(addressed):,} objections addressed in {len(generated.keys) * 2} calls",
            flush=True,
        )
        if db.engine.dialect.name == "postgresql":
            start = time.perf_counter()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE positions"))
            print(f"  VACUUM ANALYZE positions: {time.perf_counter() - start:.1f} s", flush=True)
        db.session.remove()
    return round_id


def bench_database(
    backend: str,
    url: str,
    folder: str,
    generated: GeneratedRound,
    expected: list[ClauseTally],
    runs: int,
    results: Results,
) -> None:
    from app.consensus import service
    from app.consensus.models import Round
    from app.db import db

    print(f"[{backend}] creating and migrating the database ...", flush=True)
    app = make_app(url, folder)
    round_id = seed(app, generated)
    with app.app_context():
        try:
            # A fresh session per call, as each request gets: nothing is cached from one run to the next.
            def dashboard() -> Any:
                db.session.remove()
                return service.round_tally(db.session, db.session.get(Round, round_id))

            result = dashboard()
            if result.clauses != expected:
                wrong = [c.clause_key for c, e in zip(result.clauses, expected, strict=True) if c != e]
                raise SystemExit(f"[{backend}] the database's tally differs from the in-memory one on {wrong[:5]}")
            levels = Counter(clause.level.value for clause in result.clauses)
            print(f"  the database's tally equals the in-memory one; levels {dict(levels)}", flush=True)
            results.add(f"[{backend}] service.round_tally, fresh session", time_calls(dashboard, runs), None)

            round_ = db.session.get(Round, round_id)
            addressed = service.addressed_objections(service.latest_calls(db.session, round_).values())
            results.add(
                f"[{backend}] service.counted_answers (GROUP BY + objections)",
                time_calls(lambda: service.counted_answers(db.session, round_, addressed), runs),
                None,
            )
            results.add(
                f"[{backend}] participants per category (COUNT DISTINCT)",
                time_calls(lambda: service.participants_per_category(db.session, round_), runs),
                None,
            )
        finally:
            db.session.remove()
            db.engine.dispose()


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    global BUDGET_SECONDS
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clauses", type=int, default=100, help="clauses in the round (default 100)")
    parser.add_argument("--participants", type=int, default=5_000, help="participants (default 5,000)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per measure (default 30)")
    parser.add_argument(
        "--budget",
        type=float,
        default=BUDGET_SECONDS,
        help=f"stop a measure after this many seconds of timed runs, but never below {MIN_RUNS} runs "
        f"(default {BUDGET_SECONDS:g})",
    )
    parser.add_argument(
        "--backends",
        default="sqlite,postgresql",
        help="databases to tally from, comma-separated: sqlite, postgresql, or none (default both; "
        "PostgreSQL is skipped when it is not reachable)",
    )
    parser.add_argument("--seed", type=int, default=5, help="seed of the generated round (default 5)")
    args = parser.parse_args(argv)
    BUDGET_SECONDS = args.budget
    runs = max(1, args.runs)
    backends = [b for b in args.backends.split(",") if b and b != "none"]
    began = time.perf_counter()
    results = Results()

    print(f"Generating the round: {args.clauses} clauses × {args.participants:,} participants ...", flush=True)
    generated = GeneratedRound(args.clauses, args.participants, args.seed)
    answers = generated.answers()
    groups = generated.groups()
    serious = sum(1 for answer, _ in groups if answer.serious_objection)
    print(
        f"  {len(answers):,} answers; {len(groups):,} groups as a GROUP BY gives them "
        f"({len(groups) - serious:,} counted rows + {serious:,} serious objections one by one)",
        flush=True,
    )

    print(f"Tallying in memory (up to {runs} runs each) ...", flush=True)
    expected = tally(answers, generated.keys, THRESHOLDS)
    if tally_counted(groups, generated.keys, THRESHOLDS) != expected:
        raise SystemExit("tally_counted and tally disagree")
    levels = Counter(clause.level.value for clause in expected)
    divergent = sum(bool(clause.divergent) for clause in expected)
    print(f"  levels {dict(levels)}; {divergent} clauses with a divergent category", flush=True)
    results.add(
        f"tally, {len(answers):,} answers", time_calls(lambda: tally(answers, generated.keys, THRESHOLDS), runs), 100
    )
    results.add(
        f"tally_counted, {len(groups):,} groups",
        time_calls(lambda: tally_counted(groups, generated.keys, THRESHOLDS), runs),
        100,
    )

    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="accord-tally-bench-") as folder:
            if backend == "sqlite":
                bench_database(backend, f"sqlite:///{folder}/bench.sqlite3", folder, generated, expected, runs, results)
            elif backend == "postgresql":
                why = postgres_unreachable()
                if why is not None:
                    results.skipped("[postgresql] service.round_tally", why)
                    continue
                with postgres_database() as url:
                    bench_database(backend, url, folder, generated, expected, runs, results)
            else:
                raise SystemExit(f"unknown backend {backend!r}: use sqlite, postgresql or none")

    print()
    print(results.table())
    print("\nResult: pass/FAIL compares the median with the target; p95 is nearest-rank over n timed runs.")
    print(
        f"\nTotal benchmark time: {time.perf_counter() - began:.1f} s (Python {sys.version.split()[0]}, {sys.platform})"
    )
    return 1 if results.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
