"""The CRDT snapshot and update log of each code's working text."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at, pk, utcnow


class CollabDocument(Base):
    """The compacted CRDT state of a working text; the update log holds what came after it."""

    __tablename__ = "collab_documents"

    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    # Compare-and-set counter: two processes compacting at once cannot both replace the snapshot.
    generation: Mapped[int] = mapped_column(default=1)
    compacted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CollabUpdate(Base):
    """One CRDT update, stored before it is acknowledged to the editor who sent it."""

    __tablename__ = "collab_updates"

    id: Mapped[pk]
    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id", ondelete="CASCADE"), index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
