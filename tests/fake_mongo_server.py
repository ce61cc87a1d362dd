"""A real local TCP server speaking MongoDB's wire protocol, with the Atlas Vector Search parts memlane's
mongodb engine uses, so that the real pymongo client talks to it.

Wire: OP_MSG (opcode 2013: flag bits, a body section and document-sequence sections) for every command,
and the legacy OP_QUERY `hello` / `isMaster` handshake (opcode 2004, answered with OP_REPLY) that older
pymongo (4.7) sends first on each connection; pymongo 4.20 sends that handshake as OP_MSG too. BSON is
pymongo's own `bson`. The server says it is a standalone 7.0 (maxWireVersion 21) with sessions, and no
topologyVersion, so pymongo polls it instead of streaming.

Commands: hello/isMaster, ping, buildInfo, endSessions, create, drop, listCollections, insert, update
(upserts, replacements and $set), delete, find, aggregate ($match, $group with $sum, $skip, $limit,
$project, $vectorSearch, $listSearchIndexes), count, createSearchIndexes, updateSearchIndex,
dropSearchIndex.

Atlas Vector Search as its docs describe it: createSearchIndexes needs the collection; an index of type
"vectorSearch" is {fields: [{type: "vector", path, numDimensions, similarity}, {type: "filter", path}...]},
listed as PENDING / not queryable for `polls_until_ready` listings, then READY. $vectorSearch must be the
first stage and is checked as Atlas checks it: numCandidates >= limit, both <= 10000, the path indexed as
the vector, queryVector of numDimensions numbers, filter only on fields indexed as "filter" and only with
the MQL operators Atlas allows; an index that does not exist (or is still building) gives no results and no
error, as on Atlas. The search is exact cosine over the documents passing the filter (applied before
ranking), and the score is Atlas's for cosine: (1 + cos) / 2. Dropping a collection drops its indexes.

Every command is recorded (`commands(name)`); `stop()` drops the listener and every connection but keeps the
data, and `start()` serves it again on the same port, as a restarted server would.
"""
from __future__ import annotations

import datetime
import math
import socket
import socketserver
import struct
import threading
from typing import Any, Iterator, Optional

import bson
import pytest

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
MAX_CANDIDATES = 10_000
FILTER_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not"}


class CommandError(Exception):
    def __init__(self, code: int, name: str, message: str):
        super().__init__(message)
        self.code, self.name = code, name


def bad_value(message: str) -> CommandError:
    return CommandError(2, "BadValue", message)


# ------------------------------------------------------------------ MQL matching (what the engine sends)

def _get(doc: dict, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


_MISSING = object()


def _compare(op: str, value: Any, arg: Any) -> bool:
    if op == "$eq":
        return value == arg or (arg is None and value is _MISSING)
    if op == "$ne":
        return not _compare("$eq", value, arg)
    if op == "$in":
        return any(_compare("$eq", value, a) for a in arg)
    if op == "$nin":
        return not _compare("$in", value, arg)
    if op == "$exists":
        return (value is not _MISSING) == bool(arg)
    if op == "$not":
        return not _field_matches(value, arg)
    if value is _MISSING or value is None:
        return False
    try:
        return {"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op]
    except TypeError:
        return False
    except KeyError:
        raise bad_value(f"unknown operator: {op}") from None


def _field_matches(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
        return all(_compare(op, value, arg) for op, arg in condition.items())
    return _compare("$eq", value, condition)


def matches(doc: dict, query: dict) -> bool:
    for key, condition in query.items():
        if key == "$and":
            ok = all(matches(doc, q) for q in condition)
        elif key == "$or":
            ok = any(matches(doc, q) for q in condition)
        elif key == "$nor":
            ok = not any(matches(doc, q) for q in condition)
        elif key.startswith("$"):
            raise bad_value(f"unknown top level operator: {key}")
        else:
            ok = _field_matches(_get(doc, key), condition)
        if not ok:
            return False
    return True


def filter_paths(query: Any) -> Iterator[tuple[str, str]]:
    """(field, operator) pairs of a $vectorSearch filter, refusing what Atlas refuses."""
    if not isinstance(query, dict):
        raise bad_value("$vectorSearch filter must be a document")
    for key, condition in query.items():
        if key in ("$and", "$or", "$nor"):
            for q in condition:
                yield from filter_paths(q)
        elif key.startswith("$"):
            raise bad_value(f"Operator {key} is not supported in $vectorSearch filter")
        elif isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
            for op in condition:
                if op not in FILTER_OPS:
                    raise bad_value(f"Operator {op} is not supported in $vectorSearch filter")
                yield key, op
        else:
            yield key, "$eq"


# ------------------------------------------------------------------ the server's state and commands

class Collection:
    def __init__(self) -> None:
        self.docs: dict[Any, dict] = {}  # by _id, in insertion order
        self.indexes: dict[str, dict] = {}  # search indexes by name

    def select(self, query: dict) -> list[dict]:
        return [d for d in self.docs.values() if matches(d, query)]


class FakeMongo:
    def __init__(self, polls_until_ready: int = 1):
        self.polls_until_ready = polls_until_ready
        self.dbs: dict[str, dict[str, Collection]] = {}
        self.recorded: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self._server: Optional[socketserver.ThreadingTCPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._connections: set[socket.socket] = set()
        self._next_id = 0
        self.port = 0

    # ---- lifecycle

    @property
    def uri(self) -> str:
        return (f"mongodb://127.0.0.1:{self.port}/?serverSelectionTimeoutMS=1500&connectTimeoutMS=1000"
                f"&heartbeatFrequencyMS=500")

    def start(self) -> "FakeMongo":
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down, as a crashed server: no listener, every open connection cut. The data stays."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._connections.clear()
        self._server = None

    # ---- what tests read

    def commands(self, name: Optional[str] = None) -> list[dict]:
        with self.lock:
            return [body for n, body in self.recorded if name is None or n == name]

    def collection(self, db: str, name: str) -> Optional[Collection]:
        return self.dbs.get(db, {}).get(name)

    # ---- the wire

    def _serve(self, conn: socket.socket) -> None:
        with self.lock:
            self._connections.add(conn)
        try:
            while True:
                header = _recv(conn, 16)
                if header is None:
                    return
                length, request_id, _, opcode = struct.unpack("<iiii", header)
                payload = _recv(conn, length - 16)
                if payload is None:
                    return
                if opcode == OP_MSG:
                    conn.sendall(self._op_msg(request_id, payload))
                elif opcode == OP_QUERY:
                    conn.sendall(self._op_query(request_id, payload))
                else:
                    return  # nothing else is spoken here: hang up, as a server does on a bad message
        except OSError:
            return
        finally:
            with self.lock:
                self._connections.discard(conn)
            conn.close()

    def _op_msg(self, request_id: int, payload: bytes) -> bytes:
        (flags,) = struct.unpack_from("<I", payload)
        end = len(payload) - (4 if flags & 1 else 0)  # checksumPresent: a CRC-32C trails the sections
        pos, body, sequences = 4, {}, {}
        while pos < end:
            kind = payload[pos]
            pos += 1
            if kind == 0:
                (size,) = struct.unpack_from("<i", payload, pos)
                body = bson.decode(payload[pos:pos + size])
                pos += size
            else:  # a document sequence: size, identifier, documents
                (size,) = struct.unpack_from("<i", payload, pos)
                stop = pos + size
                name_end = payload.index(b"\0", pos + 4)
                name = payload[pos + 4:name_end].decode()
                docs, at = [], name_end + 1
                while at < stop:
                    (n,) = struct.unpack_from("<i", payload, at)
                    docs.append(bson.decode(payload[at:at + n]))
                    at += n
                sequences[name] = docs
                pos = stop
        reply = bson.encode(self.run({**body, **sequences}))
        message = struct.pack("<I", 0) + b"\0" + reply
        return struct.pack("<iiii", 16 + len(message), self._reply_id(), request_id, OP_MSG) + message

    def _op_query(self, request_id: int, payload: bytes) -> bytes:
        name_end = payload.index(b"\0", 4)
        pos = name_end + 1 + 8  # numberToSkip, numberToReturn
        (size,) = struct.unpack_from("<i", payload, pos)
        query = bson.decode(payload[pos:pos + size])
        namespace = payload[4:name_end].decode()
        query = query.get("$query", query)
        if not namespace.endswith(".$cmd") or next(iter(query), "").lower() not in ("hello", "ismaster"):
            reply = error_doc(CommandError(352, "UnsupportedOpQueryCommand", "OP_QUERY is only for the handshake"))
        else:
            reply = self.run({**query, "$db": namespace.split(".")[0]})
        doc = bson.encode(reply)
        message = struct.pack("<iqii", 0, 0, 0, 1) + doc
        return struct.pack("<iiii", 16 + len(message), self._reply_id(), request_id, OP_REPLY) + message

    def _reply_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    # ---- commands

    def run(self, command: dict) -> dict:
        name = next(iter(command))
        with self.lock:
            self.recorded.append((name, command))
            try:
                handler = getattr(self, f"_cmd_{name.lower()}", None)
                if handler is None:
                    raise CommandError(59, "CommandNotFound", f"no such command: '{name}'")
                return {**handler(command, command.get("$db", "test")), "ok": 1.0}
            except CommandError as exc:
                return error_doc(exc)

    def _cmd_hello(self, command: dict, db: str) -> dict:
        return {"helloOk": True, "isWritablePrimary": True, "ismaster": True, "maxBsonObjectSize": 16 * 1024 * 1024,
                "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000,
                "localTime": datetime.datetime.now(datetime.timezone.utc), "logicalSessionTimeoutMinutes": 30,
                "connectionId": self._next_id, "minWireVersion": 0, "maxWireVersion": 21, "readOnly": False}

    _cmd_ismaster = _cmd_hello

    def _cmd_ping(self, command: dict, db: str) -> dict:
        return {}

    def _cmd_buildinfo(self, command: dict, db: str) -> dict:
        return {"version": "7.0.0", "versionArray": [7, 0, 0, 0]}

    def _cmd_endsessions(self, command: dict, db: str) -> dict:
        return {}

    def _coll(self, db: str, name: str, create: bool = False) -> Optional[Collection]:
        colls = self.dbs.setdefault(db, {})
        if name not in colls and create:
            colls[name] = Collection()
        return colls.get(name)

    def _cmd_create(self, command: dict, db: str) -> dict:
        if command["create"] in self.dbs.get(db, {}):
            raise CommandError(48, "NamespaceExists", f"Collection {db}.{command['create']} already exists.")
        self._coll(db, command["create"], create=True)
        return {}

    def _cmd_drop(self, command: dict, db: str) -> dict:
        if self.dbs.get(db, {}).pop(command["drop"], None) is None:
            raise CommandError(26, "NamespaceNotFound", "ns not found")
        return {"ns": f"{db}.{command['drop']}"}

    def _cmd_listcollections(self, command: dict, db: str) -> dict:
        batch = [{"name": n, "type": "collection", "options": {}, "info": {"readOnly": False}}
                 for n in self.dbs.get(db, {}) if matches({"name": n}, command.get("filter") or {})]
        return cursor(f"{db}.$cmd.listCollections", batch)

    def _cmd_insert(self, command: dict, db: str) -> dict:
        coll = self._coll(db, command["insert"], create=True)
        assert coll is not None
        errors = []
        for i, doc in enumerate(command.get("documents", [])):
            if doc["_id"] in coll.docs:
                errors.append({"index": i, "code": 11000, "errmsg": f"E11000 duplicate key: {doc['_id']!r}"})
                if command.get("ordered", True):
                    break
                continue
            coll.docs[doc["_id"]] = doc
        return {"n": len(command.get("documents", [])) - len(errors), **({"writeErrors": errors} if errors else {})}

    def _cmd_update(self, command: dict, db: str) -> dict:
        coll = self._coll(db, command["update"], create=True)
        assert coll is not None
        matched = modified = 0
        upserted = []
        for i, spec in enumerate(command.get("updates", [])):
            query, change = spec["q"], spec["u"]
            if isinstance(change, list):
                raise CommandError(2, "BadValue", "pipeline updates are not served here")
            operators = bool(change) and all(k.startswith("$") for k in change)
            targets = coll.select(query)
            if not spec.get("multi"):
                targets = targets[:1]
            if not targets and spec.get("upsert"):
                base = {k: v for k, v in query.items() if not k.startswith("$") and not isinstance(v, dict)}
                doc = apply_update(base, change) if operators else {**change, "_id": base.get("_id", change.get("_id"))}
                new_id = doc.pop("_id", None)
                new_id = bson.ObjectId() if new_id is None else new_id
                coll.docs[new_id] = {"_id": new_id, **doc}
                upserted.append({"index": i, "_id": new_id})
                continue
            for target in targets:
                matched += 1
                new = apply_update(target, change) if operators else {"_id": target["_id"], **change}
                if new != target:
                    modified += 1
                coll.docs[target["_id"]] = new
        return {"n": matched + len(upserted), "nModified": modified, **({"upserted": upserted} if upserted else {})}

    def _cmd_delete(self, command: dict, db: str) -> dict:
        coll = self._coll(db, command["delete"])
        n = 0
        for spec in command.get("deletes", []):
            if coll is None:
                break
            targets = coll.select(spec["q"])
            if spec.get("limit") == 1:
                targets = targets[:1]
            for doc in targets:
                del coll.docs[doc["_id"]]
                n += 1
        return {"n": n}

    def _cmd_find(self, command: dict, db: str) -> dict:
        coll = self._coll(db, command["find"])
        docs = coll.select(command.get("filter") or {}) if coll else []
        docs = docs[command.get("skip", 0):]
        if command.get("limit"):
            docs = docs[:abs(command["limit"])]
        return cursor(f"{db}.{command['find']}", [project(d, command.get("projection")) for d in docs])

    def _cmd_count(self, command: dict, db: str) -> dict:
        coll = self._coll(db, command["count"])
        return {"n": len(coll.select(command.get("query") or {})) if coll else 0}

    def _cmd_createsearchindexes(self, command: dict, db: str) -> dict:
        coll = self._coll(db, command["createSearchIndexes"])
        if coll is None:
            raise CommandError(26, "NamespaceNotFound", f"Collection '{db}.{command['createSearchIndexes']}' "
                                                        f"does not exist.")
        created = []
        for spec in command["indexes"]:
            name = spec.get("name", "default")
            if name in coll.indexes:
                raise CommandError(68, "IndexAlreadyExists", f"Index {name} already exists.")
            if spec.get("type") == "vectorSearch":
                check_vector_definition(spec["definition"])
            coll.indexes[name] = {"id": f"idx-{len(self.recorded)}", "name": name,
                                  "type": spec.get("type", "search"), "definition": spec["definition"],
                                  "polls": 0}
            created.append({"id": coll.indexes[name]["id"], "name": name})
        return {"indexesCreated": created}

    def _cmd_updatesearchindex(self, command: dict, db: str) -> dict:
        coll = self._coll(db, command["updateSearchIndex"])
        index = coll.indexes.get(command.get("name")) if coll else None
        if index is None:
            raise CommandError(27, "IndexNotFound", "Index not found")
        if index["type"] == "vectorSearch":
            check_vector_definition(command["definition"])
        index.update(definition=command["definition"], polls=0)  # rebuilt: not queryable until listed again
        return {}

    def _cmd_dropsearchindex(self, command: dict, db: str) -> dict:
        coll = self._coll(db, command["dropSearchIndex"])
        if coll is None or coll.indexes.pop(command.get("name"), None) is None:
            raise CommandError(27, "IndexNotFound", "Index not found")
        return {}

    def _cmd_aggregate(self, command: dict, db: str) -> dict:
        pipeline = command["pipeline"]
        coll = self._coll(db, command["aggregate"])
        for i, stage in enumerate(pipeline):
            if i and next(iter(stage)) in ("$vectorSearch", "$listSearchIndexes"):
                raise CommandError(40602, "Location40602", f"{next(iter(stage))} is only valid as the first stage "
                                                           f"in a pipeline")
        docs = [dict(d) for d in coll.docs.values()] if coll else []
        for stage in pipeline:
            (op, arg), = stage.items()
            if op == "$vectorSearch":
                docs = self._vector_search(coll, arg)
            elif op == "$listSearchIndexes":
                docs = self._list_search_indexes(coll, arg, db, command["aggregate"])
            elif op == "$match":
                docs = [d for d in docs if matches(d, arg)]
            elif op == "$project":
                docs = [project(d, arg) for d in docs]
            elif op == "$skip":
                docs = docs[arg:]
            elif op == "$limit":
                docs = docs[:arg]
            elif op == "$group":
                docs = group(docs, arg)
            else:
                raise CommandError(40324, "Location40324", f"Unrecognized pipeline stage name: '{op}'")
        return cursor(f"{db}.{command['aggregate']}", docs)

    def _list_search_indexes(self, coll: Optional[Collection], arg: dict, db: str, name: str) -> list[dict]:
        if coll is None:
            raise CommandError(26, "NamespaceNotFound", f"Collection '{db}.{name}' does not exist.")
        out = []
        for index in coll.indexes.values():
            if arg.get("name") not in (None, index["name"]) or arg.get("id") not in (None, index["id"]):
                continue
            index["polls"] += 1
            ready = index["polls"] > self.polls_until_ready
            out.append({"id": index["id"], "name": index["name"], "type": index["type"],
                        "status": "READY" if ready else "PENDING", "queryable": ready,
                        "latestDefinition": index["definition"]})
        return out

    def _vector_search(self, coll: Optional[Collection], spec: dict) -> list[dict]:
        for key in ("index", "path", "queryVector", "limit"):
            if key not in spec:
                raise bad_value(f"$vectorSearch.{key} is required")
        unknown = set(spec) - {"index", "path", "queryVector", "numCandidates", "limit", "filter", "exact"}
        if unknown:
            raise bad_value(f"$vectorSearch: unrecognized fields {sorted(unknown)}")
        limit = spec["limit"]
        if spec.get("exact"):
            if "numCandidates" in spec:
                raise bad_value("numCandidates is not allowed with exact: true")
        else:
            candidates = spec.get("numCandidates")
            if not isinstance(candidates, int) or candidates < limit:
                raise bad_value("numCandidates must be greater than or equal to the value of limit")
            if candidates > MAX_CANDIDATES:
                raise bad_value(f"numCandidates must be less than or equal to {MAX_CANDIDATES}")
        if not isinstance(limit, int) or limit < 1:
            raise bad_value("limit must be a positive integer")
        index = coll.indexes.get(spec["index"]) if coll else None
        if coll is None or index is None or index["type"] != "vectorSearch" or index["polls"] <= self.polls_until_ready:
            return []  # Atlas answers a missing (or still building) index with nothing, not an error
        fields = index["definition"]["fields"]
        vector = next(f for f in fields if f["type"] == "vector")
        if spec["path"] != vector["path"]:
            raise bad_value(f"Path '{spec['path']}' needs to be indexed as vector")
        query = spec["queryVector"]
        if len(query) != vector["numDimensions"]:
            raise bad_value(f"vector field is indexed with {vector['numDimensions']} dimensions but queried with "
                            f"{len(query)}")
        declared = {f["path"] for f in fields if f["type"] == "filter"}
        where = spec.get("filter") or {}
        for path, _ in filter_paths(where):
            if path not in declared:
                raise bad_value(f"Path '{path}' needs to be indexed as filter")
        scored = []
        for doc in coll.docs.values():
            stored = doc.get(vector["path"])
            if not isinstance(stored, list) or len(stored) != len(query) or not matches(doc, where):
                continue
            scored.append((similarity(vector["similarity"], query, stored), doc))
        scored.sort(key=lambda pair: -pair[0])
        return [{**doc, "$vectorSearchScore": score} for score, doc in scored[:limit]]


def similarity(kind: str, a: list[float], b: list[float]) -> float:
    """Atlas's score for each similarity: cosine and dotProduct (1 + x) / 2, euclidean 1 / (1 + d)."""
    dot = sum(x * y for x, y in zip(a, b))
    if kind == "euclidean":
        return 1 / (1 + math.dist(a, b))
    if kind == "cosine":
        norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
        dot = dot / norms if norms else 0.0
    return (1 + dot) / 2


def check_vector_definition(definition: dict) -> None:
    fields = definition.get("fields")
    if not isinstance(fields, list) or sum(1 for f in fields if f.get("type") == "vector") < 1:
        raise bad_value("a vectorSearch index needs a field of type vector")
    for f in fields:
        if f.get("type") == "vector":
            if not isinstance(f.get("numDimensions"), int) or not 1 <= f["numDimensions"] <= 8192:
                raise bad_value("numDimensions must be an integer from 1 to 8192")
            if f.get("similarity") not in ("cosine", "euclidean", "dotProduct"):
                raise bad_value("similarity must be one of cosine, euclidean, dotProduct")
        elif f.get("type") != "filter":
            raise bad_value(f"unknown field type {f.get('type')!r} in a vectorSearch index")
        if not isinstance(f.get("path"), str):
            raise bad_value("every field needs a path")


def apply_update(doc: dict, change: dict) -> dict:
    out = dict(doc)
    for op, fields in change.items():
        if op == "$set":
            out.update(fields)
        elif op == "$unset":
            for key in fields:
                out.pop(key, None)
        elif op == "$setOnInsert":
            continue
        else:
            raise bad_value(f"Unknown modifier: {op}")
    return out


def project(doc: dict, spec: Optional[dict]) -> dict:
    """Inclusion projections and {"$meta": "vectorSearchScore"}; the score is never shown unasked."""
    score = doc.get("$vectorSearchScore")
    plain = {k: v for k, v in doc.items() if k != "$vectorSearchScore"}
    if not spec:
        return plain
    out = {"_id": plain["_id"]} if spec.get("_id", 1) else {}
    for key, how in spec.items():
        if key == "_id":
            continue
        if isinstance(how, dict) and how.get("$meta") == "vectorSearchScore":
            if score is None:
                raise bad_value("query requires vectorSearchScore metadata, but it is not available")
            out[key] = score
        elif how and key in plain:
            out[key] = plain[key]
    return out


def group(docs: list[dict], spec: dict) -> list[dict]:
    """The one grouping pymongo's count_documents sends: a constant _id and {$sum: 1} (or a field)."""
    if isinstance(spec.get("_id"), str) and spec["_id"].startswith("$"):
        raise bad_value("grouping by a field is not served here")
    if not docs:
        return []
    out: dict[str, Any] = {"_id": spec.get("_id")}
    for key, acc in spec.items():
        if key == "_id":
            continue
        (op, arg), = acc.items()
        if op != "$sum":
            raise bad_value(f"accumulator {op} is not served here")
        out[key] = sum(arg if not isinstance(arg, str) else d.get(arg[1:], 0) for d in docs)
    return [out]


def cursor(ns: str, batch: list[dict]) -> dict:
    return {"cursor": {"id": bson.int64.Int64(0), "ns": ns, "firstBatch": batch}}


def error_doc(exc: CommandError) -> dict:
    return {"ok": 0.0, "errmsg": str(exc), "code": exc.code, "codeName": exc.name}


def _recv(conn: socket.socket, n: int) -> Optional[bytes]:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@pytest.fixture(scope="module")
def mongo_server() -> Iterator[FakeMongo]:
    server = FakeMongo().start()
    yield server
    server.stop()
