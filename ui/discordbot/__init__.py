"""`sciknow discord`: the bot (entry point, event handlers, message text)."""
