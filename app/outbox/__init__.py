"""Messages waiting for a mail adapter to send them."""
