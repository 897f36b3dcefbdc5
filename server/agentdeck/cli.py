"""The `agentdeck` command: serve | ui | call | demo | init | doctor | tools.

In stdio mode stdout carries only MCP messages, so everything human goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from pathlib import Path
from typing import Any

from agentdeck import __version__
from agentdeck.config import Config, load_config
from agentdeck.errors import ConfigError

__all__ = ["main"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": self.formatTime(record), "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, fmt: str) -> None:
    # Every tool call logs a line; neither format shows where in the source a line was logged or
    # which thread or process logged it, so records skip finding that out (a third of a line's cost).
    logging._srcfile = None  # the switch the logging HOWTO's "Optimization" section names
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The SDK and HTTP libraries are chatty at info; keep their warnings.
    for noisy in ("mcp", "httpx2", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentdeck", description="An MCP server for agent platforms.")
    parser.add_argument("--version", action="version", version=f"agentdeck {__version__}")
    parser.add_argument("--config", type=Path, help="config file (default: AGENTDECK_CONFIG, else the user config dir)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve MCP over stdio (default) or Streamable HTTP")
    serve.add_argument("--http", action="store_true", help="serve Streamable HTTP instead of stdio")
    serve.add_argument("--host", help="HTTP host (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8765)")
    serve.add_argument("--path", help="HTTP path of the MCP endpoint (default /mcp)")
    serve.add_argument("--stateless", action="store_true", help="HTTP without per-process session state")
    _tool_flags(serve)

    demo = commands.add_parser("demo", help="walk through every operation on the embedded platform")
    demo.add_argument("--data-dir", type=Path, help="keep the demo's data here (default: a temporary folder)")

    commands.add_parser("doctor", help="check each configured backend and say how to fix what fails")
    tools = commands.add_parser("tools", help="list the tools this config registers, with their token cost")
    _tool_flags(tools)
    tools.add_argument("--json", action="store_true", help="print the tools/list JSON instead")

    ui = commands.add_parser("ui", help="serve the live web dashboard of runs, channels, tasks and routines")
    ui.add_argument("--host", help="host to bind (default 127.0.0.1; any other needs HTTP tokens or OAuth)")
    ui.add_argument("--port", type=int, help="port (default: a free one, printed)")
    ui.add_argument("--open", action="store_true", help="open the dashboard in the browser")
    ui.add_argument("--as", dest="human", metavar="NAME", help="act as human:NAME (default: your login name)")
    ui.add_argument("--read-only", action="store_true", default=None, help="show everything, take no actions")
    ui.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    call = commands.add_parser("call", help="run one tool against the configured backends and print its result as JSON")
    call.add_argument("tool", help="tool name (see `agentdeck tools`)")
    call.add_argument("arguments", nargs=argparse.REMAINDER, metavar="KEY=VALUE", help="an argument; JSON where the tool's schema wants more than text")
    call.add_argument("--json", dest="json_arguments", metavar="OBJECT", help="all arguments as one JSON object")

    init = commands.add_parser("init", help="write a commented starter config declaring the coding agents found on PATH")
    init.add_argument("--path", type=Path, help="write here (default: the config file agentdeck reads)")
    init.add_argument("--force", action="store_true", help="replace an existing file (kept as .bak)")
    return parser


def _tool_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toolsets", help="comma-separated toolsets to register")
    parser.add_argument("--tools", help="comma-separated tool names to register")
    parser.add_argument("--exclude-tools", help="comma-separated tool names to leave out")
    parser.add_argument("--read-only", action="store_true", default=None, help="register only read-only tools")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["text", "json"])


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    def split(value: str | None) -> list[str] | None:
        return [v.strip() for v in value.split(",") if v.strip()] if value else None

    overrides: dict[str, Any] = {
        "toolsets": split(getattr(args, "toolsets", None)),
        "tools": split(getattr(args, "tools", None)),
        "exclude_tools": split(getattr(args, "exclude_tools", None)),
        "read_only": getattr(args, "read_only", None),
        "log_level": getattr(args, "log_level", None),
        "log_format": getattr(args, "log_format", None),
    }
    http = {k: getattr(args, k, None) for k in ("host", "port", "path")}
    if any(v is not None for v in http.values()):
        overrides["http"] = {k: v for k, v in http.items() if v is not None}
    return overrides


def _load(args: argparse.Namespace) -> Config:
    overrides = _overrides(args)
    http = overrides.pop("http", None)
    config = load_config(args.config, overrides=overrides)
    if http:
        config.http = config.http.model_copy(update=http)
    return config


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help(sys.stderr)
        sys.exit(2)
    try:
        if args.command == "demo":
            from agentdeck.demo import run_demo

            sys.exit(run_demo(args.data_dir))
        if args.command == "init":
            from agentdeck.init import run_init

            sys.exit(run_init(args.path or args.config, force=args.force))
        config = _load(args)
        setup_logging(config.log_level, config.log_format)
        if args.command == "serve":
            _serve(config, args)
        elif args.command == "tools":
            from agentdeck.inventory import print_tools

            print_tools(config, as_json=args.json)
        elif args.command == "ui":
            from agentdeck.ui.serve import serve_dashboard

            serve_dashboard(config, host=args.host, port=args.port, human=args.human, read_only=args.read_only, open_browser=args.open)
        elif args.command == "call":
            from agentdeck.call import run_call

            sys.exit(run_call(config, args.tool, args.arguments, args.json_arguments))
        elif args.command == "doctor":
            from agentdeck.doctor import run_doctor

            sys.exit(run_doctor(config))
    except ConfigError as exc:
        print(f"agentdeck: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _serve(config: Config, args: argparse.Namespace) -> None:
    import anyio

    from agentdeck.app import build_server

    server = build_server(config)
    log = logging.getLogger("agentdeck")
    # The server's lifespan opens and closes the backends on its own event loop.
    if args.http:
        from agentdeck.transport import serve_http
        from agentdeck.ui import Dashboard

        dashboard = Dashboard(config, port=config.http.port)
        _freeze_startup_heap()
        serve_http(server, config, stateless=args.stateless, dashboard=dashboard)
    else:
        log.info("serving MCP on stdio as %s", config.resolved_identity)
        from agentdeck.stdio import serve_stdio

        _freeze_startup_heap()
        anyio.run(serve_stdio, server)


def _freeze_startup_heap() -> None:
    """What start-up built (modules, models, schemas: some 90,000 objects) lives as long as the
    process. Frozen, the cyclic GC stops scanning it on each older-generation pass, which cost
    about 20 us per tool call (gc.callbacks over 3,000 calls: 85 ms of collections, 22 ms frozen)."""
    gc.freeze()
