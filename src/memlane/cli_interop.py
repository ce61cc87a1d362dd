"""`memlane export` and `memlane import` (docs/export-format.md), and the global --config FILE.json that points
the CLI at any store (PostgreSQL too). Only the public API: Memory, MemoryConfig and Memory's export /
import_file / import_mem0."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import ValidationError

if TYPE_CHECKING:
    from .config import MemoryConfig
    from .memory import Memory

KINDS = (("message", "messages"), ("memory", "memories"), ("history", "history rows"), ("entity", "graph entities"),
         ("relation", "graph relations"))


def load_config(path: str) -> "MemoryConfig":
    """--config: a memlane / mem0 config dict (what Memory.from_config takes) as a JSON file."""
    from .config import MemoryConfig
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(f"--config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValidationError(f"--config {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"--config {path} must hold a JSON object (a config dict)")
    return MemoryConfig.from_mem0(data)


def configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="the file to write (JSON Lines; gzip when it ends in .gz)")
    p.add_argument("--batch-size", type=int, default=500)


def configure_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="an export file (memlane export); omit with --from-mem0")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave records whose id the store already holds as they are (default: refuse the whole "
                        "import before writing anything)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--from-mem0", action="store_true",
                   help="read a mem0 installation instead: its Qdrant folder (or pgvector table) and history "
                        "database, embedded again with memlane's embedder")
    p.add_argument("--qdrant-path", help="mem0's embedded Qdrant folder (default /tmp/qdrant, mem0's default)")
    p.add_argument("--pgvector", help="mem0's PostgreSQL connection string, when it used pgvector")
    p.add_argument("--collection", help="mem0's collection_name (default mem0)")
    p.add_argument("--history-db", help="mem0's history database (default $MEM0_DIR/history.db or "
                                        "~/.mem0/history.db)")


def _summary(verb: str, counts: dict[str, Any]) -> str:
    parts = [f"{counts.get(kind, 0)} {words}" for kind, words in KINDS]
    extra = []
    if counts.get("skipped"):
        extra.append(f"{counts['skipped']} skipped (already there)")
    if counts.get("reembedded"):
        extra.append(f"{counts['reembedded']} memories embedded again")
    return f"{verb} " + ", ".join(parts) + (f" ({'; '.join(extra)})" if extra else "")


def run(args: argparse.Namespace, open_memory: Callable[[argparse.Namespace], "Memory"]) -> int:
    """Run `export` or `import`; `open_memory` builds the Memory the global options name."""
    as_json = bool(getattr(args, "json", False))
    if args.command == "import" and bool(args.file) == bool(args.from_mem0):
        raise ValidationError("import needs a FILE, or --from-mem0 (not both)")
    with open_memory(args) as m:
        if args.command == "export":
            counts = m.export(args.out, batch_size=args.batch_size, progress=not as_json)
            verb = f"exported to {args.out}:"
        elif args.from_mem0:
            counts = m.import_mem0(qdrant_path=args.qdrant_path, collection=args.collection,
                                   history_db=args.history_db, pgvector=args.pgvector,
                                   skip_existing=args.skip_existing, batch_size=args.batch_size,
                                   progress=not as_json)
            verb = "imported from mem0:"
        else:
            counts = m.import_file(args.file, skip_existing=args.skip_existing, batch_size=args.batch_size,
                                   progress=not as_json)
            verb = "imported"
    print(json.dumps(counts, indent=2) if as_json else _summary(verb, counts))
    return 0
