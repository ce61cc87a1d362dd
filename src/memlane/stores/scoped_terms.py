"""Scope-keyed full-text terms: every word is indexed as `<scope key>_<word>`, once per scope id the memory
has, so a keyword search reads only its own scope's posting lists. With plain terms plus a scope token, FTS5
walks every tenant's postings of each query word and intersects them with the scope afterwards, which
dominated search time at scale (docs/benchmarks.md, bench/results/scale.json). Keyed terms also
give each scope its own document frequencies, so one tenant's data no longer shifts another's BM25.

The key is built from consonants and digits only: FTS5's porter stemmer measures vowel-consonant runs
over the whole token, and a vowel-free prefix leaves every stem as it would be for the bare word
(except words under three letters, which porter skips and keyed may lose a final s: 'is' -> 'i').
A key is a hash, so two scopes may share one (about 1 in 6e11); the SQL scope filter that follows the
MATCH keeps results exact either way. Pure functions; the store registers `keyed_text` with SQLite.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable, Optional

from ..models import Scope

_ALPHABET = "bcdfghjklmnpqrstvwxz0123456789"  # no vowels, no 'y' (see above)
_KIND = {"user_id": "q", "agent_id": "x", "run_id": "z"}
# Most selective first: a run is usually inside an agent's or user's scope.
SEARCH_ORDER = ("run_id", "agent_id", "user_id")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def scope_key(kind: str, value: str) -> str:
    n = int.from_bytes(hashlib.blake2b(f"{kind}\x00{value}".encode("utf-8"), digest_size=8).digest(), "big")
    digits = []
    for _ in range(8):
        n, r = divmod(n, len(_ALPHABET))
        digits.append(_ALPHABET[r])
    return _KIND[kind] + "".join(digits)


def words(text: str) -> list[str]:
    """The words FTS5's unicode61 tokenizer would see (underscore is our key separator, so it splits)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text))


def keyed_text(text: Optional[str], user_id: Optional[str], agent_id: Optional[str],
               run_id: Optional[str]) -> str:
    """The text FTS5 indexes for one column: the words once per scope id, each block under its key."""
    if not text:
        return ""
    ws = words(text)
    blocks = []
    for kind, value in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)):
        if isinstance(value, str):
            key = scope_key(kind, value)
            blocks.append(" ".join(f"{key}_{w}" for w in ws))
    return " ".join(blocks)


def search_scope(scope: Scope) -> Optional[tuple[str, str]]:
    """The scope id a search reads under, as (kind, id): the most selective one the scope fixes."""
    for kind in SEARCH_ORDER:
        value = getattr(scope, kind)
        if value is not None:
            return kind, value
    return None


def phrases(key: str, terms: Iterable[str]) -> list[str]:
    """One FTS5 phrase per distinct query term under `key` (a term of several words becomes a phrase)."""
    out = []
    for term in terms:
        ws = words(term)
        if ws:
            out.append('"' + " ".join(f"{key}_{w}" for w in ws) + '"')
    return list(dict.fromkeys(out))
