"""Codes, draft versions, clauses, Markdown rendering, version diffs and publication."""
