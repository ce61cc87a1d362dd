"""Re-embedding a store: every memory's vector made again the way add() makes it with the current embedder
and settings (after changing the embedder, sentence pooling, the context weight, or upgrading memlane). Part
of the one pipeline: a generator of effects, run by the sync or async driver.

The store hands out pages oldest first and remembers how far the reindex got (stores/base.py
reindex_page), so an interrupted run resumes; the new vector space is recorded with the last page, and
until then the file refuses to open for normal use.

Each memory is embedded as add() embeds it (vectors.py).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional

import numpy as np

from . import filters as F
from . import inputs
from .effects import Store
from .models import ChangeSet
from .settings import Op, Settings
from .vectors import reembedded

Progress = Callable[[int, int], None]


def reindex(settings: Settings, batch_size: int = 256, progress: Optional[Progress] = None) -> Op:
    """Re-embed every memory, one transaction per page; returns what was done."""
    batch_size = inputs.limit(batch_size, "batch_size")
    _, total = yield Store.list(F.TRUE, 1, 0)
    newest: OrderedDict[tuple, tuple[str, np.ndarray]] = OrderedDict()
    done, cursor = 0, None
    while True:
        records, cursor = yield Store.reindex_page(settings.embedding_model, settings.dimension, cursor,
                                                   batch_size)
        if not records:
            break
        fresh = yield from reembedded(settings, records, newest)
        yield Store.apply(ChangeSet(reindex=fresh))
        done += len(records)
        if progress is not None:
            progress(done, max(total, done))
    return {"reindexed": done, "embedding_model": settings.embedding_model, "dimension": settings.dimension}


