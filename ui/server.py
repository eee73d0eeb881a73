"""`sciknow serve`: the HTTP API with the web chat mounted at `/`.

    sciknow serve [--host H] [--port P] [--backend B] [--token T | --no-auth] [--allow-run]

127.0.0.1 by default; any other address needs an API token (`ui/auth.py`).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from sciknow.config import BACKENDS, Config
from sciknow.ui.auth import serving_token


def add_serve_parser(verbs: Any) -> None:
    """Register the `serve` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser("serve", help="web chat at / and the HTTP API (ask, search, ...)")
    parser.add_argument("--host", default="127.0.0.1", help="address (other than local: token)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend", choices=BACKENDS, help="default: models.backend")
    parser.add_argument(
        "--token", help="API token every call must send (default: $SCIKNOW_API_TOKEN)"
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="serve a non-local address without a token"
    )
    parser.add_argument(
        "--allow-run", action="store_true", help="let POST /run run code in the sandbox"
    )
    parser.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace, config: Config) -> int:
    """Refuses to start, with one line, on a read-only, full or damaged data directory."""
    token = serving_token(args)
    from sciknow.serve.factory import build_assistant
    from sciknow.serve.web.api import create_app
    from sciknow.serve.web.server import run
    from sciknow.ui.webchat.app import mount_chat

    assistant = build_assistant(config, args.backend, allow_empty=True)
    assistant.check_index()
    check = dataclasses.replace(config.check, allow_run=config.check.allow_run or args.allow_run)
    app = create_app(assistant, token=token, serve=config.serve, check=check)
    mount_chat(app, config.profile.examples, f"{config.profile.display_name} assistant")
    access = "API token required" if token else "no token"
    print(f"sciknow: chat and API on http://{args.host}:{args.port}/ ({access})", flush=True)
    run(app, args.host, args.port, config.serve, "info" if args.verbose else "warning")
    return 0
