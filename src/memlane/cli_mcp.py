"""`memlane mcp`: the MCP server on stdin/stdout, for Claude Desktop, Claude Code, Cursor and other clients.

stdout carries the protocol only; warnings and errors go to stderr.
"""
from __future__ import annotations

import argparse
import os

HELP = "serve memlane's tools to an MCP client (Claude Desktop, Claude Code, Cursor) on stdin/stdout"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", help="the default user_id when a tool call names no scope "
                                  "(default: $MEMLANE_MCP_USER)")


def run(args: argparse.Namespace) -> int:
    from .cli import _check_db
    from .config import MemoryConfig, ProviderConfig
    from .mcp import USER_ENV, run_stdio
    from .mcp.server import _require_sdk

    _check_db(args.db)
    _require_sdk()  # before opening the database: the missing extra is the message to see
    config = MemoryConfig()
    if args.db:
        config.vector_store = ProviderConfig(provider="sqlite", config={"path": args.db})
    run_stdio(config, user_id=args.user or os.environ.get(USER_ENV) or None)
    return 0
