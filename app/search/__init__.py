"""Permission-aware full-text search: whoosh on local disk, or PostgreSQL full-text search, behind one adapter."""
