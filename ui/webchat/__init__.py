"""The Gradio web chat mounted at `/` by `sciknow serve` (app and safe rendering)."""
