"""Front ends: the command line, Gradio chat, Discord bot, merge-request generator."""
