"""The API-token rule of every front end that serves HTTP (`sciknow serve`, and `sciknow
mcp --transport http`), written once so the two can never disagree about who may call."""

from __future__ import annotations

import argparse
import os

from sciknow.errors import ConfigError
from sciknow.ui.api_client import TOKEN_ENV


def serving_token(args: argparse.Namespace, service: str = "") -> str | None:
    """The token every client must send: `--token`, else `$SCIKNOW_API_TOKEN`; None with
    `--no-auth`. A non-local `--host` without a token is refused: anyone who can reach
    the address could use the engine, so `--no-auth` must say the network is trusted.
    `service` names what is served in that refusal ("MCP"; nothing for the API)."""
    from sciknow.serve.web.access import is_loopback

    if args.no_auth:
        if args.token:
            raise ConfigError("give --token or --no-auth, not both")
        return None
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(args.host):
        what = f"{service} " if service else ""
        raise ConfigError(
            f"refusing to serve {what}on {args.host} without an API token: set {TOKEN_ENV} "
            "(or pass --token), or pass --no-auth to let anyone who reaches it use it"
        )
    return token
