"""The OpenAPI 3.1 description of /api/v1/."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_NOT_FOUND = _json(_ref("Error"), "Not found, or not visible to you (the same answer for both).")
_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_ROUND = {"name": "round_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_NUMBER = {"name": "number", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document; a test checks it lists every /api/v1/ route."""
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Accord API",
            "version": "1.0.0",
            "description": "Read codes of practice, their versions, diffs and the publication log. Unpublished "
            "versions are visible only to members of the code's working group (session cookie).",
        },
        "paths": {
            "/api/v1/codes": {
                "get": {
                    "summary": "List the codes you may see",
                    "operationId": "listCodes",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"codes": {"type": "array", "items": _ref("Code")}},
                                "required": ["codes"],
                            },
                            "Codes",
                        )
                    },
                }
            },
            "/api/v1/codes/{slug}": {
                "get": {
                    "summary": "One code with its visible versions",
                    "operationId": "getCode",
                    "parameters": [_SLUG],
                    "responses": {"200": _json(_ref("Code"), "The code"), "404": _NOT_FOUND},
                }
            },
            "/api/v1/codes/{slug}/versions/{number}": {
                "get": {
                    "summary": "One version: Markdown, rendered HTML, table of contents and clauses",
                    "operationId": "getVersion",
                    "parameters": [_SLUG, _NUMBER],
                    "responses": {"200": _json(_ref("VersionFull"), "The version"), "404": _NOT_FOUND},
                }
            },
            "/api/v1/codes/{slug}/versions/{number}/markdown": {
                "get": {
                    "summary": "A version's Markdown source",
                    "operationId": "getVersionMarkdown",
                    "parameters": [_SLUG, _NUMBER],
                    "responses": {
                        "200": {
                            "description": "Markdown",
                            "content": {"text/markdown": {"schema": {"type": "string"}}},
                        },
                        "404": _NOT_FOUND,
                    },
                }
            },
            "/api/v1/codes/{slug}/diff": {
                "get": {
                    "summary": "Compare two versions clause by clause, with word-level operations",
                    "operationId": "diffVersions",
                    "parameters": [
                        _SLUG,
                        {"name": "from", "in": "query", "required": True, "schema": {"type": "integer"}},
                        {"name": "to", "in": "query", "required": True, "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": _json(_ref("Diff"), "The comparison"),
                        "404": _NOT_FOUND,
                        "422": _json(_ref("Error"), "Missing or equal version numbers"),
                    },
                }
            },
            "/api/v1/codes/{slug}/versions/{number}/comments": {
                "get": {
                    "summary": "Comment threads on a version that you may see",
                    "operationId": "listComments",
                    "parameters": [_SLUG, _NUMBER],
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"comments": {"type": "array", "items": _ref("Comment")}}},
                            "Threads, oldest first",
                        ),
                        "404": _NOT_FOUND,
                    },
                },
                "post": {
                    "summary": "Submit a comment or reply (idempotent: repeat with the same Idempotency-Key)",
                    "operationId": "submitComment",
                    "parameters": [
                        _SLUG,
                        _NUMBER,
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": True,
                            "description": "8–100 characters; a retry with the same key returns the same receipt",
                            "schema": {"type": "string", "minLength": 8, "maxLength": 100},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("CommentSubmission")}},
                    },
                    "responses": {
                        "201": _json(_ref("ReceiptAnswer"), "Stored; the receipt says what was stored"),
                        "200": _json(_ref("ReceiptAnswer"), "A retry: the receipt of the comment already stored"),
                        "401": _json(_ref("Error"), "Not logged in"),
                        "403": _json(_ref("Error"), "The consultation is not open, or you may not comment"),
                        "404": _NOT_FOUND,
                        "409": _json(_ref("Error"), "A retry of a comment an administrator has hidden"),
                        "415": _json(_ref("Error"), "The body is not JSON"),
                        "422": _json(_ref("Error"), "Invalid fields, or the key was used for a different comment"),
                        "503": _json(_ref("Error"), "Busy: retry after the Retry-After header, with the same key"),
                    },
                },
            },
            "/api/v1/comments/{comment_id}": {
                "get": {
                    "summary": "One comment thread",
                    "operationId": "getCommentThread",
                    "parameters": [
                        {"name": "comment_id", "in": "path", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {"200": _json(_ref("Comment"), "The thread"), "404": _NOT_FOUND},
                }
            },
            "/api/v1/codes/{slug}/versions/{number}/dispositions": {
                "get": {
                    "summary": "The comment-resolution matrix: every visible comment with its disposition",
                    "operationId": "getDispositions",
                    "parameters": [_SLUG, _NUMBER],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"comments": {"type": "array", "items": {"type": "object"}}},
                            },
                            "Rows of the matrix",
                        ),
                        "404": _NOT_FOUND,
                    },
                }
            },
            "/api/v1/search": {
                "get": {
                    "summary": "Full-text search over versions, working texts and comments that you may see",
                    "operationId": "search",
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 1000},
                            "description": 'Words, "quoted phrases", AND, OR, NOT, and a trailing * for prefixes',
                        },
                        *[
                            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                            for name in (
                                "code",
                                "clause",
                                "kind",
                                "category",
                                "comment_type",
                                "disposition",
                                "from",
                                "to",
                            )
                        ],
                        *[
                            {
                                "name": name,
                                "in": "query",
                                "required": False,
                                "schema": {"type": "integer", "minimum": 1},
                            }
                            for name in ("version", "page", "per_page")
                        ],
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "total": {"type": "integer"},
                                    "page": {"type": "integer"},
                                    "per_page": {"type": "integer"},
                                    "facets": {"type": "object"},
                                    "hits": {"type": "array", "items": {"type": "object"}},
                                },
                                "required": ["total", "hits", "facets"],
                            },
                            "Hits with highlighted snippets, and facet counts over everything you may see",
                        ),
                        "422": _json(_ref("Error"), "A query that cannot be searched, or an unknown filter"),
                    },
                }
            },
            "/api/v1/rounds/{round_id}/positions": {
                "post": {
                    "summary": "Record your positions in an open round (session cookie); the same again changes "
                    "nothing, a different one replaces it and keeps the history",
                    "operationId": "recordPositions",
                    "parameters": [_ROUND],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        _ref("PositionSubmission"),
                                        {
                                            "type": "object",
                                            "properties": {
                                                "positions": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "items": _ref("PositionSubmission"),
                                                }
                                            },
                                            "required": ["positions"],
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json(_ref("PositionsAnswer"), "Recorded; at least one position changed"),
                        "200": _json(_ref("PositionsAnswer"), "Nothing changed: these positions were already recorded"),
                        "401": _json(_ref("Error"), "Not logged in"),
                        "403": _json(_ref("Error"), "You do not take part in this round's forum"),
                        "404": _NOT_FOUND,
                        "409": _json(_ref("Error"), "The round is not open"),
                        "415": _json(_ref("Error"), "Not JSON"),
                        "422": _json(_ref("Error"), "Invalid position; nothing was recorded"),
                    },
                },
                "get": {
                    "summary": "Every counted position of a round: named where the participant agreed to "
                    "publication, otherwise category and stance only (open to the working group while the round "
                    "runs, to everyone once it has closed)",
                    "operationId": "roundPositions",
                    "parameters": [_ROUND],
                    "responses": {"200": _json(_ref("RoundPositions"), "The positions"), "404": _NOT_FOUND},
                },
            },
            "/api/v1/rounds/{round_id}/tallies": {
                "get": {
                    "summary": "A round's rules and tallies per clause and stakeholder category",
                    "operationId": "roundTallies",
                    "parameters": [_ROUND],
                    "responses": {"200": _json(_ref("RoundTallies"), "The tallies"), "404": _NOT_FOUND},
                }
            },
            "/api/v1/publication-log": {
                "get": {
                    "summary": "The hash-chained publication log, verified on the server",
                    "operationId": "getPublicationLog",
                    "responses": {"200": _json(_ref("PublicationLog"), "The log")},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "status": {"type": "integer"},
                    },
                    "required": ["error", "message", "status"],
                },
                "Version": {
                    "type": "object",
                    "properties": {
                        "number": {"type": "integer"},
                        "label": {"type": "string"},
                        "change_summary": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "published_at": nullable_time,
                        "content_sha256": {"type": "string"},
                        "word_count": {"type": "integer"},
                        "url": {"type": "string"},
                    },
                    "required": ["number", "label", "created_at", "published_at", "content_sha256", "url"],
                },
                "VersionFull": {
                    "allOf": [
                        _ref("Version"),
                        {
                            "type": "object",
                            "properties": {
                                "markdown": {"type": "string"},
                                "html": {"type": "string"},
                                "toc": {"type": "array", "items": {"type": "object"}},
                                "clauses": {"type": "array", "items": {"type": "object"}},
                            },
                            "required": ["markdown", "html", "toc", "clauses"],
                        },
                    ]
                },
                "Code": {
                    "type": "object",
                    "properties": {
                        "slug": {"type": "string"},
                        "title": {"type": "string"},
                        "language": {"type": "string"},
                        "status": {"type": "string", "enum": ["drafting", "consultation", "closed", "final"]},
                        "summary": {"type": "string"},
                        "working_group": {"type": "string"},
                        "url": {"type": "string"},
                        "versions": {"type": "array", "items": _ref("Version")},
                    },
                    "required": ["slug", "title", "language", "status", "versions"],
                },
                "Diff": {
                    "type": "object",
                    "properties": {
                        "from": {"type": "integer"},
                        "to": {"type": "integer"},
                        "summary": {
                            "type": "object",
                            "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        },
                        "clauses": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["from", "to", "summary", "clauses"],
                },
                "CommentSubmission": {
                    "type": "object",
                    "properties": {
                        "clause": {"type": "string"},
                        "body": {"type": "string", "maxLength": 20000},
                        "start": {"type": ["integer", "null"]},
                        "end": {"type": ["integer", "null"]},
                        "quote": {"type": ["string", "null"]},
                        "proposed_text": {"type": ["string", "null"]},
                        "type": {"type": "string", "enum": ["general", "technical", "editorial"]},
                        "visibility": {"type": "string", "enum": ["public", "group"]},
                        "parent_id": {"type": ["integer", "null"]},
                        "idempotency_key": {"type": "string"},
                    },
                    "required": ["clause", "body"],
                },
                "Comment": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "clause": {"type": "string"},
                        "quote": {"type": "string"},
                        "body": {"type": "string"},
                        "proposed_text": {"type": ["string", "null"]},
                        "type": {"type": "string"},
                        "visibility": {"type": "string"},
                        "author_category": {"type": "string"},
                        "disposition": {"type": ["string", "null"]},
                        "replies": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["id", "clause", "body"],
                },
                "ReceiptAnswer": {
                    "type": "object",
                    "properties": {
                        "receipt": {
                            "type": "object",
                            "properties": {
                                "comment_id": {"type": "integer"},
                                "received_at": {"type": "string", "format": "date-time"},
                                "sha256": {"type": "string"},
                                "replayed": {"type": "boolean"},
                            },
                            "required": ["comment_id", "received_at", "sha256", "replayed"],
                        },
                        "comment": _ref("Comment"),
                    },
                    "required": ["receipt", "comment"],
                },
                "PositionSubmission": {
                    "type": "object",
                    "properties": {
                        "clause": {"type": "string"},
                        "stance": {"type": "string", "enum": ["support", "support_with_changes", "abstain", "oppose"]},
                        "serious_objection": {"type": "boolean"},
                        "rationale": {"type": "string", "maxLength": 10000},
                        "comment_id": {"type": ["integer", "null"]},
                        "publish": {"type": "boolean"},
                    },
                    "required": ["clause", "stance"],
                },
                "PositionsAnswer": {
                    "type": "object",
                    "properties": {
                        "positions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "integer"},
                                    "round": {"type": "integer"},
                                    "clause": {"type": "string"},
                                    "stance": {"type": "string"},
                                    "serious_objection": {"type": "boolean"},
                                    "revision": {"type": "integer"},
                                    "recorded_at": {"type": "string", "format": "date-time"},
                                    "changed": {"type": "boolean"},
                                },
                                "required": ["id", "clause", "stance", "revision", "changed"],
                            },
                        }
                    },
                    "required": ["positions"],
                },
                "Round": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "title": {"type": "string"},
                        "forum": {"type": "string"},
                        "code": {"type": "string"},
                        "version": {"type": "integer"},
                        "opens_at": {"type": "string", "format": "date-time"},
                        "closes_at": {"type": "string", "format": "date-time"},
                        "clauses": {"type": "array", "items": {"type": "string"}},
                        "eligibility": {"type": "string", "enum": ["members", "registered"]},
                        "counting": {"type": "string", "enum": ["person", "organisation"]},
                        "thresholds": {"type": "object"},
                    },
                    "required": ["id", "code", "version", "clauses", "thresholds"],
                },
                "RoundTallies": {
                    "type": "object",
                    "properties": {
                        "round": _ref("Round"),
                        "participants": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "tallies": {
                            "type": "array",
                            "description": "One row per clause and category, and one 'all' row per clause with "
                            "its level, serious objections, lowest category, bridging and divergent categories.",
                            "items": {"type": "object"},
                        },
                    },
                    "required": ["round", "tallies"],
                },
                "RoundPositions": {
                    "type": "object",
                    "properties": {"round": _ref("Round"), "positions": {"type": "array", "items": {"type": "object"}}},
                    "required": ["round", "positions"],
                },
                "PublicationLog": {
                    "type": "object",
                    "properties": {
                        "verified": {"type": "boolean"},
                        "problems": {"type": "array", "items": {"type": "string"}},
                        "algorithm": {"type": "string"},
                        "entries": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["verified", "entries"],
                },
            }
        },
    }
