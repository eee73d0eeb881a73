"""Model backends, the answer pipeline, attribution and the HTTP API."""
