"""effects.Store, the pipeline's typed store calls, mirrors the MemoryStore protocol: one builder per method,
with the method's parameters, so a store call cannot drift from the interface; the SQLite store implements
that interface; and the pipeline spells no store call as a string."""
import inspect
from pathlib import Path

import memlane
from memlane.effects import Store, StoreCall
from memlane.stores.base import MemoryStore
from memlane.stores.sqlite import SQLiteStore

# Called by Memory itself or by the graph engine's outbox (graphs/outbox.py), never yielded by the pipeline.
OWNER_ONLY = {"close", "job_queue", "outbox_pending", "outbox_done"}


def protocol_methods() -> dict:
    return {n: f for n, f in vars(MemoryStore).items() if inspect.isfunction(f) and not n.startswith("_")}


def builders() -> dict:
    return {n: getattr(Store, n) for n, f in vars(Store).items() if isinstance(f, staticmethod)}


def described(params) -> list[tuple]:
    return [(p.name, p.kind, p.default, p.annotation) for p in params]


def test_one_builder_per_store_method_with_its_parameters_in_order():
    methods = protocol_methods()
    assert set(builders()) == set(methods) - OWNER_ONLY
    for name, build in builders().items():
        want = list(inspect.signature(methods[name]).parameters.values())[1:]  # without self
        assert described(inspect.signature(build).parameters.values()) == described(want), name


def test_a_builder_names_its_method_and_passes_every_argument_in_order():
    for name, build in builders().items():
        args = tuple(object() for _ in inspect.signature(build).parameters)
        assert build(*args) == StoreCall(name, args)
    assert Store.get(["x"]) == StoreCall("get", (["x"], False))  # defaults are passed explicitly


def test_the_sqlite_store_implements_the_protocol(tmp_path):
    for name, method in protocol_methods().items():
        assert list(inspect.signature(getattr(SQLiteStore, name)).parameters) == \
            list(inspect.signature(method).parameters), name
    store = SQLiteStore({"path": str(tmp_path / "s.db")})
    try:
        assert isinstance(store, MemoryStore)
    finally:
        store.close()


def test_the_pipeline_builds_store_calls_only_through_store():
    package = Path(memlane.__file__).parent
    for module in [*sorted((package / "pipeline").glob("*.py")), package / "reindex.py", package / "vectors.py"]:
        assert "StoreCall(" not in module.read_text(), module.name
