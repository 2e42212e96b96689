"""Command line entry point: python -m sandbox.cvat --host H --port P --admin USER:PASSWORD."""

from __future__ import annotations

import argparse
import asyncio
import logging

from .costs import CvatCosts
from .server import CvatServer

log = logging.getLogger("sandbox.cvat")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.cvat", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--admin", default="admin:Adm1n-Passw0rd", help="USER:PASSWORD")
    parser.add_argument("--version", default="2.73.0")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--processing-time", type=float, default=0.5)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--share-dir", default=None)
    parser.add_argument("--validate-schema", action="store_true")
    parser.add_argument("--measured-costs", action="store_true",
                        help="charge a real CVAT 2.73's server CPU per request and process "
                             "tasks one after another")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    user, _, password = args.admin.partition(":")
    server = CvatServer(
        admin=(user, password),
        version=args.version,
        validate_schema=args.validate_schema,
        latency=args.latency,
        processing_time=args.processing_time,
        error_rate=args.error_rate,
        seed=args.seed,
        share_dir=args.share_dir,
        costs=CvatCosts.measured() if args.measured_costs else None,
    )
    await server.start(host=args.host, port=args.port)
    print(f"CVAT stand-in {args.version} on {server.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(parse_args(argv)))
    except KeyboardInterrupt:
        log.info("stopped")


if __name__ == "__main__":
    main()
