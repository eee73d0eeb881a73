"""Candidates from the index → ranked evidence."""
