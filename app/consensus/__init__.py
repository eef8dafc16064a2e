"""Consensus tracking: forums, rounds, positions, tallies, levels, bridging, trends and consensus calls."""
