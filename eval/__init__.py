"""The evaluation CLI: retrieval, answer and attribution metrics."""
