"""Benchmark: search over 10,000 and 100,000 comments with whoosh and with PostgreSQL full-text search.

Run from the repository root:

    .venv/bin/python bench/search.py                                  # both backends, 10k and 100k
    .venv/bin/python bench/search.py --sizes 10000 --backend whoosh   # one backend, one size
    .venv/bin/python bench/search.py --profile                        # also profile the slowest queries

For each backend the app is created with `create_app()` on a fresh database (a temporary SQLite file for
whoosh, whose index goes to a temporary folder; for PostgreSQL a database `accord_bench_<pid>` created on
127.0.0.1:5432 as user postgres and dropped at the end; set BENCH_POSTGRES_URL to use another server),
migrated with the project's migrations. The demo drafts in drafts/ are loaded (two codes, five versions)
and indexed through the real queue and indexer.

Comments are generated, not written as rows: each is a `SearchDocument` like the ones
`app.search.documents.comment_documents` makes, bulk-indexed with `backend_for(app).replace_sources()` in
batches of 10,000 (`--batch`). Their text is made of sentences of the clause they comment on and of other clauses of
the same code (English for gpai-code, Swedish for uppforandekod-ai), with comment openers, light word
substitutions and, in one comment of twenty, a unique token. Stakeholder categories, comment types,
dispositions and dates vary with realistic weights; 15 % are group-only, and comments on the unpublished
third draft belong to the working group.

Each size is indexed on top of the previous one (10k, then 90k more for 100k). Then:

- **bulk index rate**: documents per second over all the `replace_sources` batches of that step;
- **query latency**: 200 mixed queries (terms, rare terms, two-word AND, phrases, OR, NOT, prefixes, and
  terms with a filter), each the real `app.search.service.search()` for the top 20 with highlights and
  facets, timed once as an anonymous viewer and once as a member of the gpai-code working group, after
  10 warm-up queries;
- **searchable after commit**: with the indexer thread running (`SEARCH_INDEXER_THREAD` true,
  `indexer.start()`), a real comment is submitted with `submit_comment` and committed, and `search()` is
  polled until it finds the comment's unique word (10 comments by default).

Figures are wall-clock, in milliseconds: median (p50), p95 (nearest rank) and maximum, each with the 1-minute
load average when it was taken (compare figures taken at a similar load). Targets: whoosh
p95 ≤ 50 ms at 10k and ≤ 250 ms at 100k; PostgreSQL p95 ≤ 100 ms at 100k; searchable within 1 s.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import itertools
import logging
import math
import os
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from app import create_app  # noqa: E402
from app.accounts import service as accounts  # noqa: E402
from app.accounts.models import Role, StakeholderCategory, User, WorkingGroup  # noqa: E402
from app.comments import service as comments  # noqa: E402
from app.comments.models import CommentType, Disposition  # noqa: E402
from app.db import db, utcnow  # noqa: E402
from app.drafting.folders import code_folders, load_codes, read_folder  # noqa: E402
from app.drafting.models import Code, Version  # noqa: E402
from app.search.documents import PUBLIC, SearchDocument, group_audience  # noqa: E402
from app.search.indexer import indexer  # noqa: E402
from app.search.query import SearchRequest  # noqa: E402
from app.search.service import backend_for, search  # noqa: E402

DRAFTS = ROOT / "drafts"
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BATCH = 10_000
WARMUP = 10
TARGETS_MS = {("whoosh", 10_000): 50.0, ("whoosh", 100_000): 250.0, ("postgresql", 100_000): 100.0}
SEARCHABLE_TARGET_MS = 1_000.0
FIRST_ID = 10_000_000  # generated comments' ids, far above the real comments the latency check submits

CATEGORIES = [
    (StakeholderCategory.GPAI_PROVIDER, 18), (StakeholderCategory.DOWNSTREAM_PROVIDER, 12),
    (StakeholderCategory.ACADEMIA, 15), (StakeholderCategory.CIVIL_SOCIETY, 20),
    (StakeholderCategory.RIGHTS_HOLDER, 14), (StakeholderCategory.INDUSTRY_ASSOCIATION, 8),
    (StakeholderCategory.INDEPENDENT_EXPERT, 6), (StakeholderCategory.PUBLIC_AUTHORITY, 5),
    (StakeholderCategory.OTHER, 2),
]  # fmt: skip
TYPES = [(CommentType.GENERAL, 50), (CommentType.TECHNICAL, 35), (CommentType.EDITORIAL, 15)]
DISPOSITIONS = [
    ("open", 55), (Disposition.ACCEPTED.value, 12), (Disposition.PARTIALLY_ACCEPTED.value, 10),
    (Disposition.NOT_ACCEPTED.value, 10), (Disposition.NOTED.value, 10), (Disposition.OUT_OF_SCOPE.value, 3),
]  # fmt: skip
OPENERS = {
    "en": [
        "We support this measure, but", "This clause is unclear:", "We propose to delete the following.",
        "The wording should be tightened.", "As a rights holder we note that", "In our experience",
        "The KPI is not measurable as drafted.", "Please clarify the scope.", "We object to this requirement.",
        "Small providers cannot meet this.", "Suggested replacement text:", "This duplicates another measure.",
    ],
    "sv": [
        "Vi stöder åtgärden, men", "Formuleringen är otydlig:", "Vi föreslår att följande stryks.",
        "Texten bör skärpas.", "Enligt vår erfarenhet", "Nyckeltalet går inte att mäta.",
        "Förtydliga tillämpningsområdet.", "Kommunerna saknar resurser för detta.", "Vi invänder mot kravet.",
    ],
}  # fmt: skip
SUBSTITUTIONS = {
    "en": [("providers", "developers"), ("provider", "developer"), ("Signatories", "Participants"),
           ("documentation", "records"), ("framework", "policy"), ("shall", "should"), ("risk", "hazard")],
    "sv": [("myndigheter", "organisationer"), ("ska", "bör"), ("AI-system", "system"), ("beslut", "avgöranden")],
}  # fmt: skip
_STOP_WORDS = (
    "the and for that with this are from which their shall should will have has not but its any all may can each "
    "other such into under where when than more these those been being also only must what whether they them "
    "och att det som för med den ska till har inte eller från vid kan ett när enligt samt även dess"
)
STOP = set(_STOP_WORDS.split())
_MARKUP = re.compile(r"\{#[^}]*\}|\[\^[^\]]*\]|[*_`>#|]|\[([^\]]*)\]\([^)]*\)")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+")
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


# --- the corpus ----------------------------------------------------------------------------------------------


@dataclass
class Clause:
    code: str
    code_title: str
    language: str
    version: int
    published: bool
    key: str
    sentences: list[str]


@dataclass
class Corpus:
    clauses: list[Clause]
    weights: list[float]
    group_of: dict[str, int]
    by_code: dict[str, list[Clause]] = field(default_factory=dict)
    unique_tokens: list[str] = field(default_factory=list)
    words: dict[str, list[str]] = field(default_factory=dict)  # language -> words, most frequent first
    bigrams: dict[str, list[str]] = field(default_factory=dict)


def plain_sentences(markdown: str) -> list[str]:
    lines = [line for line in markdown.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    body = _MARKUP.sub(lambda m: m.group(1) or "", " ".join(lines))
    return [s.strip() for s in _SENTENCE.split(body) if len(s.split()) >= 4]


def read_corpus(session: Any) -> Corpus:
    """The clauses of the demo versions, as sentences to build comments from."""
    clauses = []
    for version in session.scalars(select(Version).order_by(Version.id)):
        code = version.code
        for clause in version.clauses:
            sentences = plain_sentences(clause.markdown)
            if sentences:
                clauses.append(
                    Clause(code.slug, code.title, code.language, version.number, version.is_published,
                           clause.key, sentences)
                )  # fmt: skip
    # gpai-code gets most of the comments; the Swedish code about one in seven.
    weights = [(6.0 if c.language == "en" else 4.0) * (1 + len(c.sentences)) ** 0.5 for c in clauses]
    groups = {code.slug: code.working_group_id for code in session.scalars(select(Code))}
    corpus = Corpus(clauses, weights, groups)
    for clause in clauses:
        corpus.by_code.setdefault(clause.code, []).append(clause)
    for language in ("en", "sv"):
        counts: Counter[str] = Counter()
        pairs: Counter[str] = Counter()
        for clause in clauses:
            if clause.language != language:
                continue
            for sentence in clause.sentences:
                words = [w.lower() for w in _WORD.findall(sentence)]
                counts.update(w for w in words if w not in STOP and len(w) >= 5)
                pairs.update(f"{a} {b}" for a, b in itertools.pairwise(words) if a not in STOP and b not in STOP)
        corpus.words[language] = [w for w, _ in counts.most_common()]
        corpus.bigrams[language] = [p for p, n in pairs.most_common(400) if n >= 2]
    return corpus


def weighted(rng: random.Random, pairs: list[tuple[Any, int]]) -> Any:
    return rng.choices([value for value, _ in pairs], weights=[weight for _, weight in pairs])[0]


def make_comment(rng: random.Random, corpus: Corpus, number: int) -> SearchDocument:
    clause = rng.choices(corpus.clauses, weights=corpus.weights)[0]
    same_code = corpus.by_code[clause.code]
    parts = [rng.choice(OPENERS[clause.language])]
    for _ in range(rng.randint(1, 4)):
        source = clause if rng.random() < 0.6 else rng.choice(same_code)
        sentence = rng.choice(source.sentences)
        for old, new in SUBSTITUTIONS[clause.language]:
            if rng.random() < 0.25:
                sentence = re.sub(rf"\b{old}\b", new, sentence)
        parts.append(sentence)
    if rng.random() < 0.05:
        token = f"ref{number:x}q"
        corpus.unique_tokens.append(token)
        parts.append(f"See {token}." if clause.language == "en" else f"Se {token}.")
    group_only = rng.random() < 0.15
    public = clause.published and not group_only
    comment_id = FIRST_ID + number
    created = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 540))
    return SearchDocument(
        id=f"comment:{comment_id}",
        source=f"comment:{comment_id}",
        kind="comment",
        code=clause.code,
        code_title=clause.code_title,
        version=clause.version,
        clause=clause.key,
        title=f"#{comment_id} · {clause.key}",
        content=" ".join(parts),
        language=clause.language,
        audience=PUBLIC if public else group_audience(corpus.group_of[clause.code]),
        date=created,
        url=f"/comments/{comment_id}#comment-{comment_id}",
        category=weighted(rng, CATEGORIES).value,
        comment_type=weighted(rng, TYPES).value,
        disposition=weighted(rng, DISPOSITIONS),
    )


def comments_batches(
    rng: random.Random, corpus: Corpus, start: int, stop: int, batch: int = BATCH
) -> Iterator[list[SearchDocument]]:
    for first in range(start, stop, batch):
        yield [make_comment(rng, corpus, n) for n in range(first, min(first + batch, stop))]


# --- the queries -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    kind: str
    text: str
    filters: tuple[tuple[str, Any], ...] = ()

    def request(self) -> SearchRequest:
        return SearchRequest(text=self.text, audiences=(), per_page=20, **dict(self.filters))


def make_queries(rng: random.Random, corpus: Corpus, count: int) -> list[Query]:
    """A fixed mix: 25 % terms, 10 % rare terms, 10 % two words, 15 % phrases, 10 % OR, 10 % NOT, 10 %
    prefixes, 10 % a term with a filter; one in six in Swedish."""
    kinds = [("term", 25), ("rare", 10), ("and", 10), ("phrase", 15), ("or", 10), ("not", 10), ("prefix", 10),
             ("filtered", 10)]  # fmt: skip
    queries = []
    for _ in range(count):
        kind = weighted(rng, kinds)
        language = "sv" if rng.random() < 1 / 6 else "en"
        words = corpus.words[language]
        common = words[:150]

        def term(pool: list[str] = common) -> str:
            return rng.choice(pool)

        filters: tuple[tuple[str, Any], ...] = ()
        if kind == "term":
            query = term()
        elif kind == "rare":
            query = rng.choice(corpus.unique_tokens) if rng.random() < 0.5 else term(words[400:3000] or words)
        elif kind == "and":
            query = f"{term()} {term()}"
        elif kind == "phrase":
            query = f'"{rng.choice(corpus.bigrams[language])}"'
        elif kind == "or":
            query = f"{term()} OR {term()}"
        elif kind == "not":
            query = f"{term()} NOT {term()}"
        elif kind == "prefix":
            word = term()
            query = word[: rng.randint(4, min(7, len(word)))] + "*"
        else:
            query = term()
            name = rng.choice(["kind", "category", "disposition", "comment_type", "code", "version", "date"])
            if name == "kind":
                filters = (("kind", rng.choice(["comment", "version"])),)
            elif name == "category":
                filters = (("category", weighted(rng, CATEGORIES).value),)
            elif name == "disposition":
                filters = (("disposition", weighted(rng, DISPOSITIONS)),)
            elif name == "comment_type":
                filters = (("comment_type", weighted(rng, TYPES).value),)
            elif name == "code":
                filters = (("code", "gpai-code" if language == "en" else "uppforandekod-ai"),)
            elif name == "version":
                filters = (("version", rng.randint(1, 2)),)
            else:
                start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=rng.randrange(0, 400))
                filters = (("date_from", start), ("date_to", start + dt.timedelta(days=60)))
        queries.append(Query(kind, query, filters))
    return queries


# --- measuring -------------------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


@dataclass
class Timing:
    values_ms: list[float]
    totals: list[int] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return statistics.median(self.values_ms)

    @property
    def p95(self) -> float:
        return percentile(self.values_ms, 95)

    @property
    def max(self) -> float:
        return max(self.values_ms)


def run_queries(viewer: object, queries: list[Query]) -> Timing:
    for query in queries[:WARMUP]:
        search(viewer, query.request())
    timing = Timing([])
    for query in queries:
        request = query.request()
        start = time.perf_counter()
        results = search(viewer, request)
        elapsed = (time.perf_counter() - start) * 1000
        timing.values_ms.append(elapsed)
        timing.totals.append(results.total)
        timing.by_kind.setdefault(query.kind, []).append(elapsed)
    return timing


def searchable_delays(app: Flask, count: int, rng: random.Random) -> list[float]:
    """Submit real comments with the indexer thread running; time commit → found by search()."""
    session = db.session
    code = session.scalars(select(Code).where(Code.slug == "gpai-code")).one()
    version = next(v for v in reversed(code.versions) if v.is_published)
    clause_keys = [c.key for c in version.clauses]
    now = utcnow()
    code.consultation_opens_at, code.consultation_closes_at = now - dt.timedelta(hours=1), now + dt.timedelta(days=1)
    author = session.scalars(select(User).where(User.email == "bench-stakeholder@example.org")).one()
    session.commit()
    delays = []
    app.config["SEARCH_INDEXER_THREAD"] = True
    indexer.start()
    try:
        for _ in range(count):
            token = f"live{uuid.uuid4().hex[:10]}"
            comments.submit_comment(
                session, author, version,
                comments.Submission(clause_key=rng.choice(clause_keys), idempotency_key=uuid.uuid4().hex,
                                    body=f"The measure needs a clearer threshold. {token}"),
            )  # fmt: skip
            session.commit()
            committed = time.perf_counter()
            while not search(None, SearchRequest(text=token, audiences=())).total:
                if time.perf_counter() - committed > 30:
                    raise RuntimeError(f"comment {token} not searchable after 30 s")
                time.sleep(0.002)
            delays.append((time.perf_counter() - committed) * 1000)
            time.sleep(rng.uniform(0.05, 0.2))
    finally:
        app.config["SEARCH_INDEXER_THREAD"] = False
    return delays


# --- the app -----------------------------------------------------------------------------------------------------


FAST_HASH = generate_password_hash("bench-password-not-used", method="pbkdf2:sha256:1000")


def migrate(url: str) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade(directory=str(ROOT / "migrations"))
        db.engine.dispose()


def build_app(backend: str, url: str, folder: Path) -> Flask:
    migrate(url)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench",
            "SEARCH_BACKEND": backend,
            "SEARCH_INDEX_DIR": str(folder / "index"),
            "SEARCH_INDEXER_THREAD": False,
        }
    )


def seed(app: Flask) -> None:
    """Load the demo drafts, index them through the queue, and make the two viewers' accounts."""
    session = db.session
    load_codes(session, [read_folder(f) for f in code_folders(DRAFTS)])
    session.commit()
    while indexer.drain(app):
        pass
    group = session.scalars(select(WorkingGroup).where(WorkingGroup.slug == "wg-gpai")).one()
    for email, category in (
        ("bench-member@example.org", StakeholderCategory.ACADEMIA),
        ("bench-stakeholder@example.org", StakeholderCategory.CIVIL_SOCIETY),
    ):
        user = User(email=email, password_hash=FAST_HASH, display_name=email.split("@")[0], category=category)
        session.add(user)
        session.flush()
        if "member" in email:
            accounts.set_role(session, None, group, user, Role.MEMBER)
    session.commit()


@dataclass
class Row:
    backend: str
    size: int
    measure: str
    p50: float | None
    p95: float | None
    max: float | None
    target: str
    result: str
    # The 1-minute load average when the measure ended: figures taken under load (other jobs on the two
    # cores) are slower, so each figure carries it.
    load: float = field(default_factory=lambda: os.getloadavg()[0])


@dataclass
class BackendReport:
    rows: list[Row] = field(default_factory=list)
    slowest: list[tuple[float, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def judge(value: float, target: float | None) -> str:
    if target is None:
        return "-"
    return "pass" if value <= target else "FAIL"


def bench_backend(backend: str, sizes: list[int], args: argparse.Namespace, report: BackendReport) -> None:
    with tempfile.TemporaryDirectory(prefix="accord-search-bench-") as tmp:
        folder = Path(tmp)
        admin = None
        if backend == "postgresql":
            name = f"accord_bench_{os.getpid()}"
            admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{folder}/bench.sqlite3"
        try:
            app = build_app(backend, url, folder)
            with app.app_context():
                run_sizes(app, backend, sizes, args, report)
                db.session.remove()
                backend_for(app).close()
                db.engine.dispose()
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


def run_sizes(app: Flask, backend: str, sizes: list[int], args: argparse.Namespace, report: BackendReport) -> None:
    started = time.perf_counter()
    seed(app)
    session = db.session
    corpus = read_corpus(session)
    member = session.scalars(select(User).where(User.email == "bench-member@example.org")).one()
    _ = list(member.memberships)
    engine = backend_for(app)
    rng = random.Random(args.seed)
    indexed = 0
    print(f"[{backend}] demo drafts indexed ({len(corpus.clauses)} clauses with text) in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    for size in sizes:
        seconds, docs = 0.0, 0
        for batch in comments_batches(rng, corpus, indexed, size, args.batch):
            start = time.perf_counter()  # generating the documents is not timed
            engine.replace_sources({doc.source: [doc] for doc in batch})
            seconds += time.perf_counter() - start
            docs += len(batch)
        indexed = size
        rate = docs / seconds if seconds else 0.0
        measure = f"bulk index {docs:,} comments, batches of {args.batch:,}"
        report.rows.append(Row(backend, size, measure, None, None, None, "-", f"{rate:,.0f} docs/s ({seconds:.1f} s)"))
        print(f"[{backend}] {size:,}: indexed {docs:,} comments at {rate:,.0f} docs/s", flush=True)
        # As `flask search reindex` does after a bulk load (PostgreSQL: VACUUM ANALYZE, without which the planner
        # misjudges the fresh GIN index and scans the whole table even for rare words; whoosh: nothing).
        engine.finish_rebuild()

        queries = make_queries(random.Random(args.seed + size), corpus, args.queries)
        target = TARGETS_MS.get((backend, size))
        for label, viewer in (("anonymous", None), ("group member", member)):
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            timing = run_queries(viewer, queries)
            if profiler:
                profiler.disable()
                print_profile(profiler, f"{backend} {size:,} {label}")
            report.rows.append(Row(backend, size, f"query, {label}", timing.p50, timing.p95, timing.max,
                                   f"p95 ≤ {target:.0f} ms" if target else "-",
                                   judge(timing.p95, target)))  # fmt: skip
            zero = sum(1 for t in timing.totals if t == 0)
            report.notes.append(
                f"{backend} {size:,} {label}: median total {statistics.median(timing.totals):,.0f} hits, "
                f"{zero} of {len(queries)} queries found nothing; p95 by kind: "
                + ", ".join(f"{k} {percentile(v, 95):.0f}" for k, v in sorted(timing.by_kind.items()))
            )
            for query, elapsed in zip(queries, timing.values_ms, strict=True):
                report.slowest.append((elapsed, f"{backend} {size:,} {label}", f"{query.text} {dict(query.filters)}"))
            print(f"[{backend}] {size:,} {label}: p50 {timing.p50:.1f} ms, p95 {timing.p95:.1f} ms "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)  # fmt: skip

        delays = searchable_delays(app, args.live, rng)
        worst = max(delays)
        report.rows.append(Row(backend, size, f"searchable after commit (n={len(delays)})",
                               statistics.median(delays), percentile(delays, 95), worst,
                               f"≤ {SEARCHABLE_TARGET_MS:.0f} ms", judge(worst, SEARCHABLE_TARGET_MS)))  # fmt: skip
        print(f"[{backend}] {size:,}: searchable after {statistics.median(delays):.0f} ms (max {worst:.0f})",
              flush=True)  # fmt: skip
    print(f"[{backend}] done in {time.perf_counter() - started:.0f} s", flush=True)


def print_profile(profiler: cProfile.Profile, label: str) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    print(f"--- profile: {label} (cumulative) ---")
    print("\n".join(out.getvalue().splitlines()[:60]))


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    header = ["backend", "docs", "measure", "p50 ms", "p95 ms", "max ms", "target", "result", "load"]
    cells = [[r.backend, f"{r.size:,}", r.measure, fmt(r.p50), fmt(r.p95), fmt(r.max), r.target, r.result,
              f"{r.load:.2f}"] for r in rows]  # fmt: skip
    widths = [max(len(str(c)) for c in column) for column in zip(header, *cells, strict=True)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="comment counts")
    parser.add_argument("--backend", choices=["whoosh", "postgresql", "both"], default="both")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per viewer (default 200)")
    parser.add_argument("--live", type=int, default=10, help="comments timed from commit to searchable")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"documents per replace_sources (default {BATCH})")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each query run")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    backends = ["whoosh", "postgresql"] if args.backend == "both" else [args.backend]
    started = time.perf_counter()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs", flush=True)
    report = BackendReport()
    for backend in backends:
        bench_backend(backend, sizes, args, report)
    print()
    print(table(report.rows))
    print()
    for note in report.notes:
        print(f"- {note}")
    print("\nSlowest queries:")
    for elapsed, where, query in sorted(report.slowest, reverse=True)[:10]:
        print(f"  {elapsed:7.1f} ms  {where:32}  {query}")
    print(f"\nTotal {time.perf_counter() - started:.0f} s; load average now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    return 0 if all(r.result != "FAIL" for r in report.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
