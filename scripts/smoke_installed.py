"""Run against an installed wheel, outside the checkout: the package imports from site-packages, ships its
data (tokenizer, calibration, py.typed, the dashboard's files) and answers the core calls. Exits non-zero on
any failure."""
from __future__ import annotations

import sys
import tempfile
from importlib import resources
from pathlib import Path

import memlane
from memlane import Memory, MemlaneError, NotFoundError

where = Path(memlane.__file__).resolve()
assert "site-packages" in where.parts, f"memlane imported from {where}, not from the installed wheel"
assert memlane.__version__, "no __version__"
package = resources.files("memlane")
assert (package / "py.typed").is_file(), "py.typed is not in the wheel"
data = [p.name for p in (package / "_data").iterdir()]
assert data, "no package data in the wheel"
ui = package / "server" / "ui"  # the dashboard memlane serve shows: static files, no build step
missing = [f for f in ("index.html", "app.js", "app.css") if not (ui / f).is_file()]
assert not missing, f"the dashboard's {', '.join(missing)} not in the wheel"

with tempfile.TemporaryDirectory() as tmp:
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": f"{tmp}/smoke.db"}},
                 "llm": {"provider": "none"}}) as m:
        added = m.add("I live in Lisbon and I am allergic to peanuts.", user_id="smoke", infer=False)
        mid = added["results"][0]["id"]
        hits = m.search("Where do I live?", user_id="smoke")["results"]
        assert hits and hits[0]["id"] == mid and 0.0 <= hits[0]["score"] <= 1.0, hits
        m.update(mid, "I live in Porto.")
        assert m.get(mid)["memory"] == "I live in Porto."
        assert [h["event"] for h in m.history(mid)] == ["ADD", "UPDATE"]
        m.delete(mid)
        try:
            m.delete(mid)
        except NotFoundError as exc:
            assert isinstance(exc, MemlaneError)
        else:
            raise AssertionError("deleting twice did not raise NotFoundError")
print(f"memlane {memlane.__version__} from {where.parent}: smoke test passed ({', '.join(sorted(data))})")
sys.exit(0)
