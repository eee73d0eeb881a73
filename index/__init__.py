"""Documents → Chunks → embeddings and the on-disk store (SQLite + FAISS + BM25)."""
