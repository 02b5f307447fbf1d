"""`streamcart` command line: serve, migrate, demo, config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from live import logs, stack_dumps
from live.settings import Settings, markdown_table

log = logging.getLogger("streamcart")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamcart", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server (HTTP, Socket.IO, RTMP)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    demo = commands.add_parser("demo", help="create demo accounts and print how to log in")
    demo.add_argument(
        "--reset", action="store_true", help="give existing demo accounts new passwords"
    )
    config = commands.add_parser("config", help="print every setting with its default")
    config.add_argument(
        "--markdown", action="store_true", help="as the README's table (paste it there)"
    )
    args = parser.parse_args(argv)

    if args.command == "config":
        return _print_config(markdown=args.markdown)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        try:
            return _serve(settings)
        except ValueError as exc:  # a setting only checked as the app is built or starts
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        return 0
    from live.demo import create_demo

    asyncio.run(create_demo(settings, reset=args.reset))
    return 0


def _serve(settings: Settings) -> int:
    from live.app import build_app

    app = build_app(settings)
    log.info(
        "Stream Cart listening",
        extra={
            "http": f"http://{settings.http_host}:{settings.http_port}",
            "swagger": f"{settings.effective_public_url}/swagger",
        },
    )
    loop = _event_loop()
    stack_dumps.install(loop)
    web.run_app(
        app,
        loop=loop,
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=settings.shutdown_timeout,
        access_log=None,
        print=None,
    )
    return 0


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS): cheaper socket I/O on the hot paths."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _migrate(settings: Settings) -> None:
    from live.app import backend_urls
    from storage.sql import make_engine
    from storage.sql.migrate import current_revision, upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(backend_urls(settings).database)
    try:
        await upgrade(engine)
        log.info("schema up to date", extra={"revision": await current_revision(engine)})
    finally:
        await engine.dispose()


def _print_config(*, markdown: bool) -> int:
    if markdown:
        print(markdown_table(), end="")
        return 0
    rows = Settings.documented()
    width = max(len(name) for name, _, _ in rows)
    for name, default, doc in rows:
        print(f"{name:<{width}}  {default:<20}  {doc.replace('`', '')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
