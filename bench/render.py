"""Benchmark: render, split, serve and diff a ~60,000-word code of practice.

Run from the repository root:

    .venv/bin/python bench/render.py                 # up to 15 runs per measure, 50 page requests
    .venv/bin/python bench/render.py --runs 30       # more runs
    .venv/bin/python bench/render.py --budget 60     # let the ~1-2 s measures do all their runs too
    .venv/bin/python bench/render.py --pages         # only the version page measures (~10 s)

A measure stops once its timed runs add up to --budget seconds (default 5, never fewer than 3 runs),
which keeps the whole benchmark under a minute on a 2-core machine.

The document is built from the demo drafts in drafts/gpai-code/ (v2.md and v3.md). Each draft is
repeated as a numbered "part" whose clause keys get a `-pN` suffix (and whose footnote labels get a
`pN-` prefix), with a light per-part word substitution so that the parts are not byte-identical.
Parts alternate between the two drafts so that the "previous" and the "next" version are both
~60,000 words: where the previous version has v2 the next has v3, and the other way round. So every
part differs exactly as the real second and third drafts differ (almost every clause changed, some
added, removed and moved), which makes the diff a heavy, whole-document revision.

Figures are wall-clock medians, p95 (nearest rank) and minimums, in milliseconds. The garbage collector
runs as it would in a server (no forced collection between runs), so its pauses show in the p95.

The version page is measured three ways: anonymous with no comments (the issue's target), then with a
consultation open and 70 comments (40 threads, 20 replies, 10 carried from the previous version), for a
logged-in working-group member (comment form, group-only comments, unread notifications) and for the
public. Pages are timed only once the search indexer thread has indexed the new versions: until then it
competes with every request for the interpreter.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from markdown_it import MarkdownIt  # noqa: E402
from timing import Results  # noqa: E402 - bench/ is on sys.path when a benchmark runs

from app.drafting.clauses import headings_from_tokens, split_clauses  # noqa: E402
from app.drafting.diffing import diff_clauses, word_diff  # noqa: E402
from app.drafting.rendering import render_markdown  # noqa: E402

DRAFTS = ROOT / "drafts" / "gpai-code"
TARGET_WORDS = 60_000
SLUG = "bench-code"

# Per-part word substitutions (whole words only); part N applies the pairs whose bit is set in N.
SUBSTITUTIONS: list[tuple[str, str]] = [
    ("Signatories", "Participants"),
    ("signatories", "participants"),
    ("providers", "developers"),
    ("provider", "developer"),
    ("documentation", "records"),
    ("framework", "scheme"),
]
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*$")
_KEY_SUFFIX = re.compile(r"\s*\{#[a-z][a-z0-9-]*\}\s*$")
_FOOTNOTE = re.compile(r"\[\^([^\]\s]+)\]")


# --- building the document -----------------------------------------------------------------------


def make_part(markdown: str, part: int) -> str:
    """Return one draft as part `part`: explicit `{#key-pN}` on every heading, varied wording."""
    headings = headings_from_tokens(MarkdownIt("commonmark").parse(markdown))
    key_at_line = {h.line: h.key for h in headings}
    pairs = [pair for bit, pair in enumerate(SUBSTITUTIONS) if part >> bit & 1]
    lines = markdown.splitlines(keepends=True)
    out = []
    for number, line in enumerate(lines):
        text = _FOOTNOTE.sub(lambda m: f"[^p{part}-{m.group(1)}]", line)
        for old, new in pairs:
            text = re.sub(rf"\b{old}\b", new, text)
        if number in key_at_line:
            match = _HEADING.match(text.rstrip("\n"))
            assert match, f"heading expected on line {number + 1}: {line!r}"
            hashes, title = match.group(1), _KEY_SUFFIX.sub("", match.group(2))
            if len(hashes) == 1:
                title = f"Part {part + 1}: {title}"
            text = f"{hashes} {title} {{#{key_at_line[number]}-p{part}}}\n"
        out.append(text)
    body = "".join(out)
    return body if body.endswith("\n") else body + "\n"


def build_parts(target_words: int = TARGET_WORDS) -> tuple[list[str], list[str]]:
    """Return the parts of (previous, next): two ~target_words versions that differ as v2 and v3 differ."""
    v2 = (DRAFTS / "v2.md").read_text(encoding="utf-8")
    v3 = (DRAFTS / "v3.md").read_text(encoding="utf-8")
    pair_words = len(v2.split()) + len(v3.split())
    parts = 2 * max(1, round(target_words / pair_words))
    previous, following = [], []
    for part in range(parts):
        old, new = (v2, v3) if part % 2 == 0 else (v3, v2)
        previous.append(make_part(old, part))
        following.append(make_part(new, part))
    return previous, following


def build_documents(target_words: int = TARGET_WORDS) -> tuple[str, str]:
    """Return (previous, next) as whole Markdown texts."""
    previous, following = build_parts(target_words)
    return "\n".join(previous), "\n".join(following)


# --- timing --------------------------------------------------------------------------------------


# A measure stops early once its timed runs add up to this many seconds (but never below MIN_RUNS),
# so that the slow measures keep the whole benchmark under a minute.
BUDGET_SECONDS = 5.0
MIN_RUNS = 3


def time_calls(fn: Callable[[], Any], runs: int, warmup: int = 1, budget: float | None = None) -> list[float]:
    """Call fn warmup + up to `runs` times; return the timed runs in milliseconds."""
    budget = BUDGET_SECONDS if budget is None else budget
    for _ in range(warmup):
        fn()
    # Start each measure from a clean heap, then let the cyclic garbage collector run as it would in a
    # server: its pauses are part of the cost (forcing a collection before every run hides them).
    gc.collect()
    samples: list[float] = []
    while len(samples) < runs and (len(samples) < MIN_RUNS or sum(samples) < budget * 1000):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


# --- the app -------------------------------------------------------------------------------------


def make_app(folder: str, previous: str, following: str) -> Any:
    from app import create_app
    from app.accounts.models import WorkingGroup
    from app.db import db
    from app.drafting import service

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.sqlite3",
            "SERVER_NAME": "accord.bench",
            "SECRET_KEY": "bench-secret",
            "WTF_CSRF_ENABLED": False,
            "SEARCH_INDEX_DIR": f"{folder}/index",
            # The embedded defaults, whatever the environment says, so that no service is needed.
            "SOCKETIO_MESSAGE_QUEUE": None,
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    with app.app_context():
        db.create_all()
        session = db.session
        group = WorkingGroup(slug="wg-bench", name="Benchmark working group")
        session.add(group)
        session.flush()
        code = service.create_code(
            session, None, group=group, slug=SLUG, title="Benchmark code of practice", language="en"
        )
        start = time.perf_counter()
        v1 = service.cut_version(session, None, code, label="Previous draft", markdown=previous)
        cut_ms = (time.perf_counter() - start) * 1000
        service.publish_version(session, None, v1)
        v2 = service.cut_version(session, None, code, label="Next draft", markdown=following)
        service.publish_version(session, None, v2)
        db.session.commit()
        print(
            f"  cut_version (split + render + build, once): {cut_ms:.0f} ms; "
            f"v1 {v1.word_count:,} words / {len(v1.clauses)} clauses, "
            f"v2 {v2.word_count:,} words / {len(v2.clauses)} clauses, stored HTML {len(v2.html) / 1024:.0f} KiB"
        )
        db.session.remove()
    wait_for_search_index(app)
    return app


def wait_for_search_index(app: Any, timeout: float = 120.0) -> None:
    """Wait until the search indexer thread has indexed the new versions.

    Cutting and publishing queue both versions for the search index, and the process's indexer thread
    then spends seconds indexing 120,000 words. Measured meanwhile, every request also waits for that
    thread whenever it releases the GIL (a system call, a database query), which is the cost of indexing
    right after a cut, not of serving a page.
    """
    from sqlalchemy import func, select

    from app.db import db
    from app.search.models import SearchQueueItem

    start = time.perf_counter()
    with app.app_context():
        while db.session.scalar(select(func.count()).select_from(SearchQueueItem)):
            db.session.rollback()
            if time.perf_counter() - start > timeout:
                print(f"  the search index is still behind after {timeout:.0f} s; measuring anyway", flush=True)
                break
            time.sleep(0.1)
        db.session.remove()
    print(f"  search indexer caught up in {time.perf_counter() - start:.1f} s", flush=True)


def add_consultation(app: Any, threads: int = 40, replies: int = 20, carried: int = 10) -> str:
    """Open a consultation on the benchmark code with comments in it; return a member's login id.

    `threads` comments on the newest version (a quarter of them group-only, by the member), `replies` to
    them, and `carried` comments made on the previous version and re-anchored into the newest, as a page
    in the middle of a consultation has; the member also has three unread notifications.
    """
    import datetime as dt

    from sqlalchemy import select

    from app.accounts.models import Membership, Role, StakeholderCategory, User, WorkingGroup
    from app.comments import service as comments
    from app.db import db, utcnow
    from app.drafting import service

    with app.app_context():
        session = db.session
        group = session.scalars(select(WorkingGroup).where(WorkingGroup.slug == "wg-bench")).one()
        # No password: the benchmark logs the member in through the session cookie.
        unusable = "!"  # no hash matches it
        member, stakeholder = (
            User(
                email=f"{name}@bench.test",
                password_hash=unusable,
                display_name=name.title(),
                organisation="Bench",
                category=StakeholderCategory.CIVIL_SOCIETY,
            )
            for name in ("member", "stakeholder")
        )
        session.add_all([member, stakeholder, Membership(user=member, working_group=group, role=Role.MEMBER)])
        code = service.get_code(session, None, SLUG)
        now = utcnow()
        code.consultation_opens_at = now - dt.timedelta(days=1)
        code.consultation_closes_at = now + dt.timedelta(days=30)
        session.flush()
        previous, newest = (service.get_version(session, None, code, n) for n in (1, 2))

        def submit(author: User, version: Any, n: int, **fields: Any) -> int:
            key = version.clauses[(n * 7) % len(version.clauses)].key
            sub = comments.Submission(
                clause_key=key, body=f"Comment {n}: please *clarify* this.", idempotency_key=f"bench-{n:06d}", **fields
            )
            return comments.submit_comment(session, author, version, sub).comment_id

        ids = [
            submit(member, newest, n, visibility="group") if n % 4 == 0 else submit(stakeholder, newest, n)
            for n in range(threads)
        ]
        for n in range(replies):
            submit(member, newest, threads + n, parent_id=ids[n % len(ids)])
        for n in range(carried):
            submit(stakeholder, previous, threads + replies + n)
        for n in range(3):
            comments.notify(session, member, "version", f"Notice {n}", f"/codes/{SLUG}/v2")
        session.commit()
        login_id = member.get_id()
        db.session.remove()
    wait_for_search_index(app)
    return login_id


def stored_clauses_of_versions(app: Any) -> tuple[list[Any], list[Any]]:
    from app.db import db
    from app.drafting import service

    with app.app_context():
        code = service.get_code(db.session, None, SLUG)
        old = service.stored_clauses(service.get_version(db.session, None, code, 1))
        new = service.stored_clauses(service.get_version(db.session, None, code, 2))
        db.session.remove()
    return old, new


def time_get(client: Any, url: str, runs: int, warmup: int, expect: bytes | None = None) -> tuple[list[float], int]:
    """GET url warmup times (checking the answer), then time up to `runs` requests in milliseconds."""
    response = None
    for _ in range(warmup):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.data[:500])
        if expect is not None:
            assert expect in response.data, f"{url} does not contain {expect!r}"
    size = len(response.data) if response is not None else 0

    def get() -> None:
        assert client.get(url).status_code == 200

    return time_calls(get, runs, warmup=0), size


def measure_version_pages(app: Any, client: Any, requests: int, results: Results) -> None:
    """Time the cached version page: public, then (in a consultation with comments) a member's and the public's."""
    print(f"Serving the version page ({requests} requests per measure) ...", flush=True)
    samples, size = time_get(client, f"/codes/{SLUG}/v2", requests, warmup=5, expect=b'id="title-p0"')
    print(f"  version page: {size / 1024:.0f} KiB", flush=True)
    results.add(f"GET /codes/{SLUG}/v2 (stored HTML)", samples, 5)

    print("Opening a consultation with comments, and logging a working-group member in ...", flush=True)
    login_id = add_consultation(app)
    member = app.test_client()
    with member.session_transaction() as session:
        session["_user_id"], session["_fresh"] = login_id, True
    # The member sees the comment form (a choice of 555 clauses), 40 threads, 10 carried comments and a count.
    samples, size = time_get(member, f"/codes/{SLUG}/v2", requests, warmup=5, expect=b"(3 unread)")
    print(f"  version page for the member: {size / 1024:.0f} KiB", flush=True)
    results.add(f"GET /codes/{SLUG}/v2, member, consultation with comments", samples, None)
    samples, size = time_get(client, f"/codes/{SLUG}/v2", requests, warmup=5, expect=b"Comment 1:")
    print(f"  version page for the public: {size / 1024:.0f} KiB", flush=True)
    results.add(f"GET /codes/{SLUG}/v2, public, consultation with comments", samples, None)


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    global BUDGET_SECONDS
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per measure (default 15)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per version page measure (default 50)")
    parser.add_argument(
        "--budget",
        type=float,
        default=BUDGET_SECONDS,
        help=f"stop a measure after this many seconds of timed runs, but never below {MIN_RUNS} runs "
        f"(default {BUDGET_SECONDS:g}); raise it with --runs to get every run of the slow measures",
    )
    parser.add_argument(
        "--pages", action="store_true", help="measure only the version pages (no rendering, compare or diff measures)"
    )
    args = parser.parse_args(argv)
    runs = max(1, args.runs)
    BUDGET_SECONDS = args.budget
    began = time.perf_counter()
    results = Results()

    print("Building the documents ...", flush=True)
    previous_parts, following_parts = build_parts()
    previous, following = "\n".join(previous_parts), "\n".join(following_parts)
    # For scale: the same previous version, with only the first of its parts revised.
    light = "\n".join([following_parts[0], *previous_parts[1:]])
    print(
        f"  {len(previous_parts)} parts; previous: {len(previous.split()):,} words, "
        f"{len(previous.encode()) / 1024:.0f} KiB; next: {len(following.split()):,} words, "
        f"{len(following.encode()) / 1024:.0f} KiB",
        flush=True,
    )

    if not args.pages:
        print(f"Rendering and splitting (up to {runs} runs each) ...", flush=True)
        start = time.perf_counter()
        render_markdown(following)
        results.add("render_markdown, 60k words, first call in process", [(time.perf_counter() - start) * 1000], None)
        results.add("render_markdown, 60k words (no cache)", time_calls(lambda: render_markdown(following), runs), 100)
        results.add("split_clauses, 60k words", time_calls(lambda: split_clauses(following), runs), None)

    from app.db import db

    print("Creating the app, database and versions ...", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        app = make_app(folder, previous, following)
        client = app.test_client()
        if not args.pages:
            # Again, now that the process holds a whole app as a server process does: the garbage collector's
            # full collections scan every live object, so they cost more here.
            results.add(
                "render_markdown, 60k words, app loaded", time_calls(lambda: render_markdown(following), runs), 100
            )

        measure_version_pages(app, client, args.requests, results)
        if args.pages:
            with app.app_context():
                db.engine.dispose()
            return finish(results, began)

        print(f"Serving the compare page and the diff API (up to {runs} requests each) ...", flush=True)
        samples, size = time_get(client, f"/codes/{SLUG}/compare?from=1&to=2", runs, warmup=1, expect=b"<ins>")
        print(f"  compare page: {size / 1024:.0f} KiB", flush=True)
        results.add(f"GET /codes/{SLUG}/compare?from=1&to=2", samples, None)
        samples, size = time_get(client, f"/api/v1/codes/{SLUG}/diff?from=1&to=2", runs, warmup=1)
        print(f"  diff API: {size / 1024:.0f} KiB", flush=True)
        results.add(f"GET /api/v1/codes/{SLUG}/diff?from=1&to=2", samples, None)

        print(f"Diffing the two versions (up to {runs} runs each) ...", flush=True)
        old_clauses, new_clauses = stored_clauses_of_versions(app)
        diffs = diff_clauses(old_clauses, new_clauses)
        counts: dict[str, int] = {}
        for d in diffs:
            counts[d.status] = counts.get(d.status, 0) + 1
        print(f"  clause statuses: {counts}, moved: {sum(d.moved for d in diffs)}", flush=True)
        results.add(
            "diff_clauses, stored clauses", time_calls(lambda: diff_clauses(old_clauses, new_clauses), runs), 150
        )

        light_clauses = split_clauses(light)
        light_diffs = diff_clauses(old_clauses, light_clauses)
        changed = sum(d.status != "unchanged" for d in light_diffs)
        print(
            f"  light revision (1 of {len(previous_parts)} parts revised): {changed} clauses not unchanged", flush=True
        )
        results.add(
            f"diff_clauses, 1 of {len(previous_parts)} parts revised (for scale)",
            time_calls(lambda: diff_clauses(old_clauses, light_clauses), runs),
            None,
        )

        start = time.perf_counter()
        ops = word_diff(previous, following)
        once = (time.perf_counter() - start) * 1000
        print(
            f"  word_diff, whole texts: first run {once:.0f} ms, {len(ops)} operations "
            f"({sum(op == 0 for op, _ in ops)} equal)",
            flush=True,
        )
        results.add("word_diff, whole texts", time_calls(lambda: word_diff(previous, following), runs, warmup=0), 150)

        with app.app_context():
            db.engine.dispose()
    return finish(results, began)


def finish(results: Results, began: float) -> int:
    """Print the table of results."""
    print()
    print(results.table())
    print("\nResult: pass/FAIL compares the median with the target; p95 is nearest-rank over n timed runs.")
    print(
        f"\nTotal benchmark time: {time.perf_counter() - began:.1f} s (Python {sys.version.split()[0]}, {sys.platform})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
