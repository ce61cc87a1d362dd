"""The memory pipeline, written once. Each operation is a generator: it validates, decides and plans
without doing I/O, yields effects (embed, store calls, LLM calls) for a driver to perform, and returns the
public result. `Memory` and `AsyncMemory` are thin drivers over these functions.

By operation: ingest.py (add: validation, verbatim and procedural), infer.py (add with an LLM),
retrieval.py (search), reads.py (get, get_all, history, users, the message log), edits.py (update, delete,
delete_all, delete_users, reset); turns.py (the turns around a memory) and common.py are what they share.
A name used by a test's monkeypatch is patched in the module that looks it up (e.g. retrieval.result_scores).
"""
from .common import GRAPH_NO_LLM_WARNING, NO_LLM_WARNING, history_row, new_memory, retrying
from .edits import batch_delete, batch_update, delete, delete_all, delete_users, reset, update
from .ingest import AddRequest, add, execute_add, prepare_add
from .reads import get, get_all, history, message_log, messages, users
from .retrieval import search

__all__ = ["GRAPH_NO_LLM_WARNING", "NO_LLM_WARNING", "AddRequest", "add", "batch_delete", "batch_update",
           "delete", "delete_all", "delete_users", "execute_add", "get", "get_all", "history", "history_row",
           "message_log", "messages", "new_memory", "prepare_add", "reset", "retrying", "search", "update",
           "users"]
