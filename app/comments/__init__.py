"""Consultation: anchored threaded comments, suggested text, dispositions, receipts, campaign groups."""
