"""The comment margin of a version page: its threads and the comments carried into it, from one query.

The rules are those of `service.list_comments(..., threads=True)` and `service.comments_carried_into`:
threads are the version's top-level comments that are not withdrawn, group-only ones only for the working
group (in the query); carried comments are earlier versions' top-level comments re-anchored into this
version, each checked with `can_see_comment`. Replies are counted, not loaded: the margin shows how many
a thread has that the viewer may read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, bindparam, func, or_, select
from sqlalchemy.orm import Session, joinedload

from app.accounts.models import User
from app.comments.models import Comment, CommentAnchor, Visibility
from app.comments.service import can_see_comment
from app.drafting.models import Version
from app.policy import Action, can


def _margin_query(*, in_group: bool) -> Select[tuple[Comment, CommentAnchor]]:
    on_version = Comment.version_id == bindparam("version_id")
    if not in_group:
        on_version = on_version & (Comment.visibility == Visibility.PUBLIC)
    return (
        select(Comment, CommentAnchor)
        # A comment has at most one anchor per version (unique), so each comment comes once.
        .outerjoin(
            CommentAnchor,
            (CommentAnchor.comment_id == Comment.id) & (CommentAnchor.version_id == bindparam("version_id")),
        )
        .where(
            Comment.withdrawn_at.is_(None),
            Comment.parent_id.is_(None),
            or_(on_version, CommentAnchor.id.is_not(None)),
        )
        # Every card shows its author's name.
        .options(joinedload(Comment.author))
        .order_by(Comment.id)
    )


def _reply_count_query(*, in_group: bool, author: bool) -> Select[tuple[int | None, int]]:
    # A reply is made on its thread's version (`submit_comment` refuses any other), which the viewer may
    # see here; so `can_see_comment` comes down to: the working group sees every reply, others the public
    # ones and their own.
    visible: ColumnElement[bool] | None = None
    if not in_group:
        visible = Comment.visibility == Visibility.PUBLIC
        if author:
            visible = visible | (Comment.author_id == bindparam("viewer_id"))
    query = select(Comment.parent_id, func.count(Comment.id)).where(
        Comment.version_id == bindparam("version_id"), Comment.parent_id.is_not(None), Comment.withdrawn_at.is_(None)
    )
    if visible is not None:
        query = query.where(visible)
    return query.group_by(Comment.parent_id)


# Built once: the page asks the same questions on every request, only the version and the viewer differ.
_QUERIES = {in_group: _margin_query(in_group=in_group) for in_group in (False, True)}
_REPLY_COUNTS = {
    (in_group, author): _reply_count_query(in_group=in_group, author=author)
    for in_group in (False, True)
    for author in (False, True)
}


@dataclass(frozen=True)
class Margin:
    """The comments a viewer sees beside a version."""

    threads: list[Comment]
    carried: list[tuple[Comment, CommentAnchor]]
    # Visible, not withdrawn replies per thread id.
    reply_counts: dict[int, int]
    by_clause: dict[str, list[Comment]]


def margin_for(session: Session, viewer: object, version: Version) -> Margin:
    """Return the threads on a version and the earlier comments carried into it that the viewer may see."""
    in_group = can(viewer, Action.VIEW_GROUP_COMMENTS, version.code)
    rows = session.execute(_QUERIES[in_group], {"version_id": version.id}).all()
    threads: list[Comment] = []
    carried: list[tuple[Comment, CommentAnchor]] = []
    for comment, anchor in rows:
        # A row may be here for its anchor alone; the thread rule is checked again for it.
        if comment.version_id == version.id and (in_group or comment.visibility == Visibility.PUBLIC):
            threads.append(comment)
        if anchor is not None and can_see_comment(viewer, comment):
            carried.append((comment, anchor))
    by_clause: dict[str, list[Comment]] = {}
    for thread in threads:
        by_clause.setdefault(thread.clause_key, []).append(thread)
    reply_counts: dict[int, int] = {}
    if threads:
        viewer_id = viewer.id if isinstance(viewer, User) else None
        counts = session.execute(
            _REPLY_COUNTS[in_group, viewer_id is not None], {"version_id": version.id, "viewer_id": viewer_id}
        )
        replies = {parent_id: count for parent_id, count in counts}
        reply_counts = {thread.id: replies.get(thread.id, 0) for thread in threads}
    return Margin(threads, carried, reply_counts, by_clause)
