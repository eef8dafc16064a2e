"""The append-only audit log and the hash-chained publication log."""
