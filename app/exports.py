"""CSV downloads shared by the exports of every package."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Response

# A cell starting with one of these is run as a formula by spreadsheet programs (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_response(rows: Sequence[Mapping[str, Any]], filename: str, columns: Sequence[str] | None = None) -> Response:
    """Answer with `rows` as a CSV attachment; text that a spreadsheet would run as a formula is defused."""
    buffer = io.StringIO()
    fieldnames = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))
    if fieldnames:
        writer = csv.DictWriter(buffer, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
