"""Real-time co-editing of a code's working text: a pycrdt replica per code, a durable update log,
a Socket.IO namespace, coalesced fan-out and presence."""
