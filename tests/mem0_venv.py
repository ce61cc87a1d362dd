"""The throwaway venv holding the real mem0ai package, for the tests that check memlane against mem0 itself
(test_import_mem0.py: data mem0 wrote; test_mem0_client.py: mem0's platform client). Made once, under a file
lock, in the git-ignored .venv-mem0/ (pip install takes a few minutes the first time); never the project's
.venv. Never skipped: a venv or pip failure fails the test with pip's own words."""
import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-mem0"
PYTHON = VENV / "bin" / "python"
MEM0 = "mem0ai==2.2.1"
REQUIREMENTS = [MEM0, "psycopg[binary,pool]"]  # psycopg: mem0's pgvector store
READY = ("import mem0, qdrant_client, psycopg, psycopg_pool, importlib.metadata as m; "
         f"assert m.version('mem0ai') == '{MEM0.split('==')[1]}'")


def mem0_python() -> Path:
    """The venv's interpreter, with mem0ai (made now if missing or out of date)."""
    with open(ROOT / ".venv-mem0.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if PYTHON.exists() and subprocess.run([str(PYTHON), "-c", READY], capture_output=True,
                                              timeout=120).returncode == 0:
            return PYTHON
        steps = [[sys.executable, "-m", "venv", "--clear", str(VENV)],
                 [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.fail(f"could not prepare the mem0ai venv in {VENV}: {(done.stderr or done.stdout)[-2000:]}")
    return PYTHON
