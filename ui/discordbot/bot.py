"""`sciknow discord`: the Discord bot, a client of a running `sciknow serve`.

    sciknow discord           # connect and answer (DISCORD_TOKEN, [discord] config)
    sciknow discord --check   # validate the config and the API, without Discord

The bot token is read from `DISCORD_TOKEN` only (never a file or a flag, which would end
up in shell history or the repository); `SCIKNOW_API_TOKEN`, when set, is sent to the API.
The bot itself lives in `handlers.py`, imported only when it runs, so that the
`sciknow` command line does not load discord.py for other verbs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from sciknow.config import Config, DiscordConfig

if TYPE_CHECKING:  # httpx loads only when the bot runs, not for every sciknow command
    from sciknow.ui.api_client import ApiClient

DISCORD_TOKEN_ENV = "DISCORD_TOKEN"
log = logging.getLogger("sciknow.discord")


def add_discord_parser(verbs: Any) -> None:
    """Register the `discord` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser("discord", help="the Discord bot (a client of `sciknow serve`)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the [discord] config and the API connection, without connecting to Discord",
    )
    parser.set_defaults(run=run_discord)


def _api(settings: DiscordConfig) -> ApiClient:
    from sciknow.ui.api_client import TOKEN_ENV, ApiClient

    return ApiClient(settings.api_url, os.environ.get(TOKEN_ENV) or None, settings.timeout_s)


def run_discord(args: argparse.Namespace, config: Config) -> int:
    """Exit status 2 for what the user must fix (no or a bad token, an unusable API)."""
    log.setLevel(logging.INFO)  # a service: its notices show without -v
    if args.check:
        return asyncio.run(check(config.discord))
    token = os.environ.get(DISCORD_TOKEN_ENV, "").strip()
    if not token:
        print(
            f"sciknow: error: set {DISCORD_TOKEN_ENV} to the bot's token (Developer Portal, "
            "your application, Bot, Reset Token)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(serve_bot(config.discord, token))


async def serve_bot(settings: DiscordConfig, token: str) -> int:
    """Run the bot until it is stopped; discord.py reconnects after network failures."""
    import aiohttp
    import discord

    from sciknow.ui.discordbot.handlers import SciknowBot

    api = _api(settings)
    try:
        async with SciknowBot(settings, api) as bot:
            await bot.start(token)
    except discord.LoginFailure:
        log.error("Discord refused %s: it is not a valid bot token", DISCORD_TOKEN_ENV)
        return 2
    except discord.PrivilegedIntentsRequired:
        log.error(
            "Discord refused the Message Content intent: enable it in the Developer Portal "
            "(your application, Bot, Privileged Gateway Intents)"
        )
        return 2
    except (aiohttp.ClientError, OSError) as err:
        log.error("cannot reach Discord: %s", err)
        return 1
    finally:
        await api.aclose()
    return 0


def _where(settings: DiscordConfig) -> list[str]:
    """Print where the bot answers; a problem when that is nowhere (no channel, no DMs)."""
    dms = "on" if settings.allow_dm else "off"
    print(f"channels: {', '.join(map(str, settings.channels)) or 'none'}; direct messages: {dms}")
    if settings.channels or settings.allow_dm:
        return []
    return [
        "no channel is configured and direct messages are off: the bot would answer nowhere; "
        'list channel names or IDs in [discord] channels (e.g. channels = ["petsc-help", '
        "123456789012345678])"
    ]


async def check(settings: DiscordConfig) -> int:
    """Print what the bot would use and whether the API answers; 2 on a problem."""
    from sciknow.ui.api_client import ApiError

    problems = []
    if not os.environ.get(DISCORD_TOKEN_ENV, "").strip():
        problems.append(f"{DISCORD_TOKEN_ENV} is not set: the bot cannot log in")
    problems += _where(settings)
    print(f"maintainer role: {settings.maintainer_role or 'none (no escalation)'}")
    api = _api(settings)
    try:
        health = await api.health()
        paths = await api.paths()
        print(
            f"API {settings.api_url}: {health.get('status')}, {health.get('documents')} "
            f"documents, backend {health.get('backend')}"
        )
        if health.get("status") != "ok":
            problems.append(f"the API's index is not ready ({health.get('status')})")
        if "/feedback" not in paths:
            print("note: the API has no /feedback: votes cannot be stored")
    except ApiError as err:
        problems.append(f"API {settings.api_url}: {err}")
    finally:
        await api.aclose()
    for problem in problems:
        print(f"sciknow discord: {problem}", file=sys.stderr)
    if not problems:
        print("ok")
    return 2 if problems else 0
