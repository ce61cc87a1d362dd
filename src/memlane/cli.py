"""`memlane` command line: add, search, list, get, update, delete, history, graph, reindex, doctor, demo.

Human output is a table (`get` prints one field a line); --json prints the API's result as JSON. The
database is the embedded default ($MEMLANE_HOME/memlane.db) unless --db names another file. Memory ids are
always printed whole, and commands take the whole id (memlane does not resolve id prefixes).

Exit status (also in `memlane --help`): 0 ok; 1 not found (no memory has that id) or a declined
confirmation; 2 bad input (usage, invalid value or id, configuration, a --db that is not a memlane
database); 3 the operation failed (a provider, a conflicting write, an internal error); 130 interrupted;
141 the output pipe was closed. `doctor` has its own: 0 clean, 1 violations, 2 not a memlane database, 3
locked. None of these prints a traceback (--verbose shows the one of an internal error).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TextIO

from . import __version__, cli_graph, cli_interop, cli_mcp, cli_serve
from .errors import ConfigurationError, InternalError, MemlaneError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from .memory import Memory

EXIT_OK = 0
EXIT_NOT_FOUND = 1  # also: a confirmation the user declined (nothing was done)
EXIT_BAD_INPUT = 2  # argparse's own code for usage errors
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `cmd | head` reports for a C program under `set -o pipefail`

EPILOG = f"""\
exit status:
  {EXIT_OK}    ok
  {EXIT_NOT_FOUND}    not found: no memory has that id (get, update, delete, history), or a
       confirmation was declined (nothing was done)
  {EXIT_BAD_INPUT}    bad input: usage error, invalid value or id, configuration error, or a --db
       that is a folder or not a memlane database
  {EXIT_FAILED}    the operation failed: a provider (LLM, embedder, store) failed, a write
       conflicted with another one, or an internal error
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_BROKEN_PIPE}  the output pipe was closed early (`memlane list ... | head`)
  doctor: 0 no violations, 1 violations found, 2 not a memlane database,
          3 it could not be read (locked)

Ids are the full 36-character ids that add, list and search print; id prefixes
are not accepted.
"""

# What the library's no-LLM warning says on the command line (the library's own text names Python's infer=False).
CLI_NO_LLM_WARNING = ("memlane: no LLM is configured, so `add` stores messages verbatim instead of extracting "
                      "facts. Set OPENAI_API_KEY (or another provider's key) to extract facts, or pass --no-infer "
                      "to store verbatim without this warning.")
_NO_LLM_PREFIX = "memlane: no LLM is configured"


class _CliError(Exception):
    """An error the CLI itself detects: its message goes to stderr and `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


class _CliWording(logging.Filter):
    """On the "memlane" logger while the CLI runs: rewords the library's no-LLM warning for the command line
    (--no-infer rather than infer=False), and without --verbose drops the record the library logs with a
    traceback for an InternalError (the CLI prints that error itself, in one line)."""

    def __init__(self) -> None:
        super().__init__()
        self.verbose = False
        try:
            from .pipeline import NO_LLM_WARNING
            self.library_text: Optional[str] = NO_LLM_WARNING
        except ImportError:  # moved: recognised by its opening words alone
            self.library_text = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            text = record.getMessage()  # however it was logged ("%s" with the text as argument too)
            if text == self.library_text or text.startswith(_NO_LLM_PREFIX):
                record.msg, record.args = CLI_NO_LLM_WARNING, ()
        return self.verbose or not record.exc_info


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


def _table(rows: list[dict[str, Any]], columns: list[str], out: Optional[TextIO] = None) -> None:
    if not rows:
        print("(none)", file=out)
        return
    width = shutil.get_terminal_size((120, 20)).columns
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    # Give the widest column what is left of the terminal so lines do not wrap; ids are never shortened
    # (they are what get, update, delete and history take).
    shrinkable = [i for i, c in enumerate(columns) if c != "id"]
    if shrinkable:
        wide = max(shrinkable, key=lambda i: widths[i])
        rest = sum(w + 2 for i, w in enumerate(widths) if i != wide)
        widths[wide] = max(20, min(widths[wide], width - rest))
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip(), file=out)
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


def _scope(args: argparse.Namespace) -> dict[str, Any]:
    return {"user_id": args.user, "agent_id": args.agent, "run_id": args.run}


def _describe(scope: dict[str, Optional[str]]) -> str:
    """The scope's given ids in words: "user alice, agent bot"."""
    return ", ".join(f"{key[:-3]} {value}" for key, value in scope.items() if value is not None)


def _check_db(db: Optional[str]) -> None:
    # SQLite's own word for a folder is "unable to open database file" (or doctor's "no such file").
    if db and Path(db).is_dir():
        raise _CliError(f"--db {db} is a folder, not a database file")


def _memory_id(text: str) -> str:
    """The id as given; a hex prefix (as git accepts) gets a message saying the whole id is needed."""
    if re.fullmatch(r"[0-9a-fA-F][0-9a-fA-F-]{0,34}", text):
        raise _CliError(f"{text!r} is not a whole memory id: give all 36 characters, as `memlane list` "
                        f"prints them (id prefixes are not accepted)")
    return text


def _memory(args: argparse.Namespace, reindexing: bool = False, graph: bool = False) -> Memory:
    from .config import MemoryConfig, ProviderConfig
    from .memory import Memory
    _check_db(args.db)
    config = cli_interop.load_config(args.config) if getattr(args, "config", None) else MemoryConfig()
    if args.db:
        config.vector_store = ProviderConfig(provider="sqlite", config={"path": args.db})
    if graph:  # reading the graph kept in the embedded file needs no LLM
        config.graph_store = {"provider": "sqlite"}
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


def _emit_record(args: argparse.Namespace, item: dict[str, Any], fields: list[str]) -> None:
    """One memory, one field a line, nothing shortened (empty fields are left out)."""
    if args.json:
        print(json.dumps(item, indent=2, ensure_ascii=False))
        return
    width = max(map(len, fields)) + 2
    for field in fields:
        value = _cell(item.get(field))
        if value:
            print(f"{field + ':':<{width}}{value}")


def _confirm(question: str) -> bool:
    """Ask on the terminal (the question on stderr, so --json output stays clean); no terminal: refuse."""
    if not sys.stdin.isatty():
        raise _CliError(f"{question.rstrip('?')}: refused without a terminal to ask on; pass --yes to confirm")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        print(file=sys.stderr)
        raise
    if not answer:  # end of input (Ctrl-D)
        print(file=sys.stderr)
    return answer.strip().lower() in ("y", "yes")


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
    """0: no violations; 1: some (after --repair: some remain); 2 (raised): not a memlane database; 3: it could
    not be read (locked past the busy timeout)."""
    from .config import MemoryConfig, ProviderConfig
    from .memory import Memory
    from .stores import sqlite_doctor
    _check_db(args.db)
    config = cli_interop.load_config(args.config) if getattr(args, "config", None) else MemoryConfig()
    if args.db:
        config.vector_store = ProviderConfig(provider="sqlite", config={"path": args.db})
    report = None
    if config.relational_provider == "sqlite":
        path = config.database_path()
        try:
            report = sqlite_doctor.repair(path) if args.repair else sqlite_doctor.check(path)
        except sqlite3.OperationalError as exc:  # e.g. locked past the busy timeout
            print(f"error: {path}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    engine = None
    if config.vector_engine is not None:  # the engine against the store (opening it applies the outbox)
        with Memory(config) as m:
            engine = m.engine_status(repair=args.repair)
    if report is None and engine is None:
        print(f"error: memlane doctor checks SQLite files and external vector engines; "
              f"{config.relational_provider!r} has neither", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        out = {"ok": (report is None or report.ok) and (engine is None or engine["in_step"])}
        print(json.dumps({**out, **(report.model_dump() if report else {}),
                          **({"engine": engine} if engine else {})}, indent=2, ensure_ascii=False))
    else:
        if report is not None:
            print(report.summary())
        if engine is not None:
            print(_engine_summary(config.vector_store.provider, engine))
    code = sqlite_doctor.exit_code(report) if report is not None else EXIT_OK
    return code if engine is None or engine["in_step"] else max(code, 1)


def _engine_summary(provider: str, engine: dict[str, Any]) -> str:
    line = (f"vector engine {provider}: {engine['engine_vectors']} vector(s) for {engine['store_memories']} "
            f"memorie(s), {engine['outbox_pending']} outbox entr(ies) pending")
    if engine.get("resynced") is not None:
        line += f"\n  repair: drift found, {engine['resynced']} memorie(s) loaded into the engine again"
    return line + ("\n  ok: in step" if engine["in_step"] else
                   "\n  drift: the engine does not hold what the store holds (memlane doctor --repair reloads it)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memlane", description="Long-term memory for LLM applications.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"memlane {__version__}")
    parser.add_argument("--db", help="SQLite database file (default: $MEMLANE_HOME/memlane.db)")
    parser.add_argument("--config", help="a config dict (memlane's or mem0's) as a JSON file: any store")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    # --db and --json are also accepted after the command (`memlane list --user alice --json`); SUPPRESS
    # keeps a subcommand from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help="SQLite database file")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")

    def command(name: str, help: str, epilog: Optional[str] = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=epilog, parents=[common])

    def scoped(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--user", help="user_id")
        p.add_argument("--agent", help="agent_id")
        p.add_argument("--run", help="run_id")
        return p

    def with_id(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("id", help="the memory's full id, as add, list and search print it")
        return p

    not_found = "Exit status 1 when no memory has that id."
    p = scoped(command("add", help="remember a message"))
    p.add_argument("text")
    p.add_argument("--role", default="user", choices=["user", "assistant"])
    p.add_argument("--metadata", help="JSON object")
    p.add_argument("--timestamp", help="when it was said (ISO 8601)")
    p.add_argument("--no-infer", action="store_true",
                   help="store the text verbatim instead of extracting facts with the LLM (without an LLM "
                        "configured, add does so anyway and warns unless this is given)")
    p = scoped(command("search", help="hybrid search within a scope"))
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--threshold", type=float)
    p.add_argument("--filters", help="JSON filter object")
    p.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                   help="rerank the best candidates with the packaged maxsim reranker (slower, better)")
    p = scoped(command("list", help="list memories of a scope (with their full ids)"))
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--filters", help="JSON filter object")
    with_id(command("get", help="show one memory", epilog=not_found))
    p = with_id(command("update", help="change a memory's text or metadata", epilog=not_found))
    p.add_argument("text", nargs="?")
    p.add_argument("--metadata", help="JSON object, merged into the memory's metadata (a key set to null is "
                                      "removed)")
    p = scoped(command("delete", help="delete one memory, or all of a scope with --all",
                       epilog=not_found + " --all asks for confirmation on a terminal; without one it "
                                          "refuses (exit 2) unless --yes is given."))
    p.add_argument("id", nargs="?", help="the memory's full id, as add, list and search print it")
    p.add_argument("--all", action="store_true", help="delete every memory of the given scope")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask before delete --all")
    with_id(command("history", help="every change of a memory", epilog=not_found))
    p = scoped(command("graph", help="the relations of a scope's graph memory (graph_store sqlite)"))
    p.add_argument("--format", choices=cli_graph.FORMATS, default="text",
                   help="text (default), json, dot (Graphviz) or mermaid")
    p.add_argument("--as-of", help="what was true then (ISO 8601) instead of now")
    command("demo", help="feed a short conversation through add and search it")
    p = command("reindex", help="embed every memory again with the packaged embedder (after an upgrade, or to "
                                "move a file made with another embedder onto it)")
    p.add_argument("--batch-size", type=int, default=256)
    p = command("doctor", help="check the database's invariants (exit 1 on violations, 2 if it is not one); "
                               "--repair mends what can be derived")
    p.add_argument("--repair", action="store_true", help="rebuild the full-text index and vector copies, "
                                                          "settle jobs already applied, reload an external vector "
                                                          "engine that drifted (--config), then check again")
    cli_serve.configure_serve(command("serve", help=cli_serve.SERVE_HELP))
    cli_serve.configure_keys(command("keys", help=cli_serve.KEYS_HELP))
    cli_mcp.configure(command("mcp", help=cli_mcp.HELP))
    cli_interop.configure_export(command("export", help="write every memory, vector, history row, message and "
                                                        "graph relation to a file (docs/export-format.md)"))
    cli_interop.configure_import(command("import", help="import an export file, or a mem0 installation with "
                                                        "--from-mem0"))
    return parser


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "demo":
        _check_db(args.db)
        cmd_demo(args)
        return EXIT_OK
    if args.command == "doctor":
        return cmd_doctor(args)
    if args.command == "serve":
        return cli_serve.run_serve(args)
    if args.command == "keys":
        return cli_serve.run_keys(args)
    if args.command == "mcp":
        return cli_mcp.run(args)
    if args.command in ("export", "import"):
        return cli_interop.run(args, _memory)
    if args.command == "reindex":
        with _memory(args, reindexing=True) as m:
            r = m.reindex(batch_size=args.batch_size, progress=not args.json)
        _emit(args, r, ["reindexed", "embedding_model", "dimension"])
        return EXIT_OK
    if args.command == "graph":
        with _memory(args, graph=True) as m:
            relations = m.get_all(**_scope(args), limit=1, as_of=args.as_of)["relations"]
        print(cli_graph.render(relations, "json" if args.json else args.format))
        return EXIT_OK
    if args.command == "delete" and args.all == bool(args.id):
        parser.error("delete needs an id, or --all with a scope (not both)")
    memory_id = _memory_id(args.id) if getattr(args, "id", None) else ""  # set for the commands that use it
    with _memory(args) as m:
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
            item = m.get(memory_id)
            if item is None:
                raise NotFoundError(f"memory {memory_id} not found")
            _emit_record(args, item, ["id", "memory", "user_id", "agent_id", "run_id", "timestamp", "created_at",
                                      "updated_at", "metadata"])
        elif args.command == "update":
            _emit(args, m.update(memory_id, args.text, _json_arg(args.metadata, "metadata")),
                  ["id", "memory", "message"])
        elif args.command == "delete" and args.all:
            scope = _scope(args)
            total = m.get_all(**scope, limit=1)["total"]  # also checks the scope before anything is asked
            if not args.yes and not _confirm(f"Delete all {total} memor{'y' if total == 1 else 'ies'} "
                                             f"of {_describe(scope)}?"):
                print("nothing deleted", file=sys.stderr)
                return EXIT_NOT_FOUND
            _emit(args, m.delete_all(**scope), ["deleted", "message"])
        elif args.command == "delete":
            _emit(args, m.delete(memory_id), ["id", "message"])
        elif args.command == "history":
            entries = m.history(memory_id)
            if not entries and m.get(memory_id) is None:
                raise NotFoundError(f"memory {memory_id} not found")
            _emit(args, entries, ["event", "old_memory", "new_memory", "created_at"])
    return EXIT_OK


def _error(message: str) -> None:
    try:
        print(f"error: {message}", file=sys.stderr)
    except (BrokenPipeError, ValueError):  # stderr closed too: the exit status says it
        pass


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so that flushing it at exit raises nothing (Python's recipe,
    https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (output captured in-process)
        pass


def main(argv: Optional[list[str]] = None) -> int:
    wording = _CliWording()
    library_log = logging.getLogger("memlane")
    library_log.addFilter(wording)
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        wording.verbose = args.verbose
        if args.command in ("serve", "mcp"):  # a long-running server: its callers pass infer=False, not a flag
            library_log.removeFilter(wording)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
        code = _run(parser, args)
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
        return code
    except _CliError as exc:
        _error(str(exc))
        return exc.code
    except NotFoundError as exc:
        _error(str(exc))
        return EXIT_NOT_FOUND
    except (ValidationError, ConfigurationError) as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    except MemlaneError as exc:
        _error(str(exc) if wording.verbose or not isinstance(exc, InternalError)
               else f"{exc}; run again with --verbose for the traceback")
        return EXIT_FAILED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except SystemExit:  # argparse after --help, --version or a usage error: what it printed, flushed now
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()
        raise
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        library_log.removeFilter(wording)


if __name__ == "__main__":
    sys.exit(main())
