"""Shared by the benchmarks: nearest-rank percentiles, pass/fail on the median, and the results table."""

from __future__ import annotations

import math
import statistics
from typing import Any


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def status(median: float, p95: float, target_ms: float | None) -> str:
    """Pass or fail on the median; say so when the p95 is over the target too."""
    if target_ms is None:
        return "info"
    if median > target_ms:
        return "FAIL"
    return "pass (p95 over)" if p95 > target_ms else "pass"


class Results:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, measure: str, samples: list[float], target_ms: float | None) -> None:
        median, p95 = statistics.median(samples), percentile(samples, 95)
        row = {
            "measure": measure,
            "n": len(samples),
            "median": median,
            "p95": p95,
            "min": min(samples),
            "target": target_ms,
            "status": status(median, p95, target_ms),
        }
        self.rows.append(row)
        print(f"  {measure}: median {median:.2f} ms, p95 {p95:.2f} ms, min {row['min']:.2f} ms", flush=True)

    def skipped(self, measure: str, why: str) -> None:
        self.rows.append({"measure": measure, "skipped": why})
        print(f"  {measure}: skipped ({why})", flush=True)

    def failed(self) -> bool:
        return any(row.get("status") == "FAIL" for row in self.rows)

    def table(self) -> str:
        header = ["Measure", "n", "Median (ms)", "p95 (ms)", "Min (ms)", "Target", "Result"]
        body = [
            [r["measure"], "—", "—", "—", "—", "—", f"skipped: {r['skipped']}"]
            if "skipped" in r
            else [
                r["measure"],
                str(r["n"]),
                f"{r['median']:.2f}",
                f"{r['p95']:.2f}",
                f"{r['min']:.2f}",
                "—" if r["target"] is None else f"≤ {r['target']:g} ms",
                r["status"],
            ]
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(header), rule, *(line(row) for row in body)])
