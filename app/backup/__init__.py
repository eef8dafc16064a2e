"""Online backups with a checksummed manifest, and restores into an empty database (`flask backup`)."""
