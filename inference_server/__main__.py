"""Command line of the engine: ``python -m inference_server --stdio`` (what the add-on spawns) and CLI commands.

No bpy. Imports stay light here: each command imports what it needs when it runs.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__, config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference_server",
        description="Reel2Rig inference engine: turns video into a Take (.take.npz + .take.json).")
    parser.add_argument("--version", action="version", version=f"reel2rig engine {__version__}")
    parser.add_argument("--stdio", action="store_true",
                        help="serve JSON-RPC 2.0 (Content-Length framing) on stdin/stdout; logs go to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # --- CLI subcommands ------------------------------------------------------------------------------------------
    from .cli import add_commands

    add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    config.prepare_environment()  # first thing: package caches go into our cache folder
    config.limit_heap_growth()    # long clips: freed buffers go back to the system (see config)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stdio:
        from . import server

        return server.serve_stdio()
    if args.command:
        from .cli import run_command

        return run_command(args)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
