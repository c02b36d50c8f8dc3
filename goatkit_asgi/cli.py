"""The ``gk`` command line.

``gk demo`` runs the example helpdesk with its plugins on SQLite. Errors are one line on stderr
and a non-zero exit code; ``--help`` on every command says what it takes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILED = 1


def _cmd_demo(args: argparse.Namespace) -> int:
    import uvicorn

    from .demo.app import build_app

    data_dir = Path(args.dir).resolve()
    app = build_app(data_dir, debug=True, base_url=f"http://{args.host}:{args.port}")
    url = f"http://{args.host}:{args.port}/"
    print(f"goatkit demo: {url}  (data in {data_dir}; Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gk", description="goatkit_asgi: plugins for ASGI apps")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the example helpdesk with its plugins on SQLite")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    demo.add_argument(
        "--dir", default=".goatkit-demo", help="where the demo keeps its data (.goatkit-demo)"
    )
    demo.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"gk {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
