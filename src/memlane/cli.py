"""`memlane` command line: add, search, list, get, update, delete, history, reindex, doctor, demo.

Human output is a table; --json prints the API's result as JSON. The database is the embedded default
($MEMLANE_HOME/memlane.db) unless --db names another file.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sqlite3
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Optional

from .errors import MemlaneError, ValidationError

DEMO_CONVERSATION = [
    ("2026-03-02T09:00:00Z", [
        {"role": "user", "content": "Hi! I just moved to Lisbon for a new job at a robotics startup."},
        {"role": "assistant", "content": "Congratulations! How are you finding Lisbon so far?"},
        {"role": "user", "content": "I love it, though I'm still hunting for good vegetarian restaurants."},
    ]),
    ("2026-03-09T18:30:00Z", [
        {"role": "user", "content": "My sister Ana is visiting next month; she is allergic to peanuts."},
        {"role": "user", "content": "I started learning Portuguese on Tuesdays and Thursdays."},
    ]),
    ("2026-03-20T20:15:00Z", [
        {"role": "user", "content": "I adopted a cat named Pixel this weekend."},
        {"role": "user", "content": "On weekends I go surfing in Ericeira."},
    ]),
]
DEMO_QUERIES = ["Which city did I move to?", "Any dietary needs to keep in mind for dinner?",
                "Is anyone visiting me soon?", "Do I have a pet?",
                "What do I do on weekends?"]


def _table(rows: list[dict[str, Any]], columns: list[str], out=sys.stdout) -> None:
    if not rows:
        print("(none)", file=out)
        return
    width = shutil.get_terminal_size((120, 20)).columns
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    # Give the widest column what is left of the terminal so lines do not wrap.
    wide = max(range(len(columns)), key=lambda i: widths[i])
    rest = sum(w + 2 for i, w in enumerate(widths) if i != wide)
    widths[wide] = max(20, min(widths[wide], width - rest))
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)), file=out)
    for row in cells:
        print("  ".join(textwrap.shorten(v, w, placeholder="…").ljust(w) if len(v) > w else v.ljust(w)
                        for v, w in zip(row, widths)).rstrip(), file=out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value) if value else ""
    return str(value)


def _scope(args: argparse.Namespace) -> dict[str, Optional[str]]:
    return {"user_id": args.user, "agent_id": args.agent, "run_id": args.run}


def _memory(args: argparse.Namespace, reindexing: bool = False):
    from .config import MemoryConfig, ProviderConfig
    from .memory import Memory
    config = MemoryConfig()
    if args.db:
        config.vector_store = ProviderConfig(provider="sqlite", config={"path": args.db})
    if getattr(args, "rerank", None):
        config.reranker = ProviderConfig(provider="maxsim")  # the packaged one; it loads offline
    # reindexing: opened without checking the file's vector space, which the reindex replaces
    return Memory(config, _reindexing=reindexing)


def _json_arg(text: Optional[str], what: str) -> Optional[dict[str, Any]]:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:  # a usage error like any other: exit 2 with the message on stderr
        raise ValidationError(f"--{what} is not valid JSON: {exc}") from None
    return value


def _emit(args: argparse.Namespace, result: Any, columns: list[str]) -> None:
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    if isinstance(result, dict) and "results" in result:
        _table(result["results"], columns)
        if "total" in result:
            print(f"{len(result['results'])} of {result['total']}")
    elif isinstance(result, list):
        _table(result, columns)
    elif isinstance(result, dict):
        _table([result], columns)
    elif result is None:
        print("not found")
        raise SystemExit(1)


def cmd_demo(args: argparse.Namespace) -> None:
    from .config import MemoryConfig, ProviderConfig
    from .memory import Memory
    tmp = None
    path = args.db
    if not path:
        tmp = tempfile.mkdtemp(prefix="memlane-demo-")
        path = str(Path(tmp) / "demo.db")
    print(f"memlane demo: embedded store at {path}, local embedder (offline)\n")
    try:
        config = MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": path}))
        with Memory(config) as m:
            for when, turns in DEMO_CONVERSATION:
                result = m.add(turns, user_id="demo-user", infer=False, timestamp=when,
                               metadata={"source": "demo"})
                for item in result["results"]:
                    print(f"  + [{when[:10]}] {item['memory']}")
            total = m.get_all(user_id="demo-user")["total"]
            print(f"\n{total} memories stored for demo-user\n")
            for q in DEMO_QUERIES:
                hits = m.search(q, user_id="demo-user", limit=2)["results"]
                print(f"? {q}")
                for h in hits:
                    print(f"    {h['score']:.3f}  {h['memory']}")
            alice = m.search("Where does the user live?", user_id="someone-else")["results"]
            print(f"\nscoping: another user sees {len(alice)} of demo-user's memories")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def cmd_doctor(args: argparse.Namespace) -> int:
    """0: no violations; 1: some (after --repair: some remain); 2 (raised): not a memlane database."""
    from .config import MemoryConfig, ProviderConfig
    from .stores import sqlite_doctor
    config = MemoryConfig()
    if args.db:
        config.vector_store = ProviderConfig(provider="sqlite", config={"path": args.db})
    path = config.database_path()
    try:
        report = sqlite_doctor.repair(path) if args.repair else sqlite_doctor.check(path)
    except sqlite3.OperationalError as exc:  # e.g. locked past the busy timeout
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"ok": report.ok, **report.model_dump()}, indent=2, ensure_ascii=False))
    else:
        print(report.summary())
    return sqlite_doctor.exit_code(report)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="memlane", description="Long-term memory for LLM applications.")
    parser.add_argument("--db", help="SQLite database file (default: $MEMLANE_HOME/memlane.db)")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    # --db and --json are also accepted after the command (`memlane list --user alice --json`); SUPPRESS
    # keeps a subcommand from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help="SQLite database file")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    def scoped(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--user", help="user_id")
        p.add_argument("--agent", help="agent_id")
        p.add_argument("--run", help="run_id")
        return p

    p = scoped(command("add", help="remember a message"))
    p.add_argument("text")
    p.add_argument("--role", default="user", choices=["user", "assistant"])
    p.add_argument("--metadata", help="JSON object")
    p.add_argument("--timestamp", help="when it was said (ISO 8601)")
    p.add_argument("--no-infer", action="store_true", help="store verbatim even with an LLM configured")
    p = scoped(command("search", help="hybrid search within a scope"))
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--threshold", type=float)
    p.add_argument("--filters", help="JSON filter object")
    p.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                   help="rerank the best candidates with the packaged maxsim reranker (slower, better)")
    p = scoped(command("list", help="list memories of a scope"))
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--filters", help="JSON filter object")
    command("get", help="show one memory").add_argument("id")
    p = command("update", help="change a memory's text or metadata")
    p.add_argument("id")
    p.add_argument("text", nargs="?")
    p.add_argument("--metadata", help="JSON object (replaces the metadata)")
    p = scoped(command("delete", help="delete one memory, or all of a scope with --all"))
    p.add_argument("id", nargs="?")
    p.add_argument("--all", action="store_true", help="delete every memory of the given scope")
    command("history", help="every change of a memory").add_argument("id")
    command("demo", help="feed a short conversation through add and search it")
    p = command("reindex", help="embed every memory again with the packaged embedder (after an upgrade, or to "
                                "move a file made with another embedder onto it)")
    p.add_argument("--batch-size", type=int, default=256)
    p = command("doctor", help="check the database's invariants (exit 1 on violations, 2 if it is not one); "
                               "--repair mends what can be derived")
    p.add_argument("--repair", action="store_true", help="rebuild the full-text index and vector copies, "
                                                          "settle jobs already applied, then check again")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")

    try:
        if args.command == "demo":
            cmd_demo(args)
            return 0
        if args.command == "doctor":
            return cmd_doctor(args)
        if args.command == "reindex":
            m = _memory(args, reindexing=True)
            try:
                r = m.reindex(batch_size=args.batch_size, progress=not args.json)
            finally:
                m.close()
            _emit(args, r, ["reindexed", "embedding_model", "dimension"])
            return 0
        m = _memory(args)
        if args.command == "add":
            r = m.add({"role": args.role, "content": args.text}, **_scope(args),
                      metadata=_json_arg(args.metadata, "metadata"), infer=not args.no_infer,
                      timestamp=args.timestamp)
            _emit(args, r, ["id", "event", "memory"])
        elif args.command == "search":
            r = m.search(args.query, **_scope(args), limit=args.limit, threshold=args.threshold,
                         filters=_json_arg(args.filters, "filters"), rerank=args.rerank)
            _emit(args, r, ["score", "id", "memory", "created_at"])
        elif args.command == "list":
            r = m.get_all(**_scope(args), limit=args.limit, offset=args.offset,
                          filters=_json_arg(args.filters, "filters"))
            _emit(args, r, ["id", "memory", "created_at", "metadata"])
        elif args.command == "get":
            _emit(args, m.get(args.id), ["id", "memory", "user_id", "agent_id", "run_id", "created_at",
                                         "updated_at", "metadata"])
        elif args.command == "update":
            _emit(args, m.update(args.id, args.text, _json_arg(args.metadata, "metadata")),
                  ["id", "memory", "message"])
        elif args.command == "delete":
            if args.all:
                _emit(args, m.delete_all(**_scope(args)), ["deleted", "message"])
            elif args.id:
                _emit(args, m.delete(args.id), ["id", "message"])
            else:
                parser.error("delete needs an id, or --all with a scope")
        elif args.command == "history":
            _emit(args, m.history(args.id), ["event", "old_memory", "new_memory", "created_at"])
        m.close()
    except MemlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
