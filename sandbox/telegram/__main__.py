"""Run the Telegram Bot API stand-in standalone: python -m sandbox.telegram --port 8081."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from sandbox.telegram.server import TelegramServer

log = logging.getLogger("sandbox.telegram")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m sandbox.telegram", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--token", action="append", default=[], help="register a bot (repeatable)")
    p.add_argument(
        "--strict-tokens",
        action="store_true",
        help="answer 401 to tokens not given with --token (default: accept any well-formed one)",
    )
    p.add_argument("--rate-limits", action="store_true", help="enable Telegram-like flood limits")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Start the server and run until SIGINT/SIGTERM."""
    server = TelegramServer(accept_any_token=not args.strict_tokens)
    for token in args.token:
        server.add_bot(token)
    if args.rate_limits:
        server.rate_limits()
    base_url = await server.start(args.host, args.port)
    log.info("Telegram Bot API sandbox listening on %s", base_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        log.info("Telegram Bot API sandbox stopped")


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
