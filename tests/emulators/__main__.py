"""Run one emulator standalone: `python -m tests.emulators NAME [--port N] [--uds PATH]`."""

import argparse
import importlib
import sys

import uvicorn

from tests.emulators import EMULATORS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators")
    parser.add_argument("name", choices=EMULATORS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--uds", help="serve on this Unix socket instead of TCP")
    args, extra = parser.parse_known_args(argv)
    module = importlib.import_module(f"tests.emulators.{args.name}")
    options = module.parse_options(extra) if hasattr(module, "parse_options") else {}
    app = module.create_app(**options)
    config = uvicorn.Config(app, host=args.host, port=args.port, uds=args.uds, log_level="warning")
    server = uvicorn.Server(config)

    async def announce_then_serve() -> None:
        import anyio

        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            while not server.started:
                await anyio.sleep(0.01)
            if args.uds:
                where = f"unix:{args.uds}"
            else:
                port = server.servers[0].sockets[0].getsockname()[1]
                where = f"http://{args.host}:{port}"
            print(f"{args.name} emulator listening on {where}", flush=True)

    import anyio

    try:
        anyio.run(announce_then_serve)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
