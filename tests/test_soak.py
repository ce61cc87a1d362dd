"""A bounded run of bench/soak.py: ~15 s of mixed load from several processes and threads on one file,
then ~20 kill -9s of writer and background-job processes. Fails on any lost or duplicated write, any
doctor violation (after each kill and at the end), any job not done exactly once, and any exception that
is not a MemlaneError."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_soak_bounded(tmp_path):
    out = tmp_path / "soak.json"
    env = {**os.environ, "MEMLANE_LLM": "none"}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--processes", "3", "--threads", "4",
                           "--seconds", "15", "--kills", "20", "--parallel", "2", "--db", str(tmp_path / "soak.db"),
                           "--out", str(out)], capture_output=True, text=True, timeout=900, env=env)
    assert out.exists(), proc.stderr[-5000:]
    results = json.loads(out.read_text())
    failures = {phase: results[phase]["failures"] for phase in ("load", "crash")}
    assert results["ok"] and proc.returncode == 0, json.dumps(failures, indent=1)[:20000]
    load, crash = results["load"], results["crash"]
    assert load["ops"]["add"]["ok"] > 0 and load["ops"]["update_text"]["ok"] > 0
    assert load["ops"]["delete"]["ok"] > 0 and load["ops"]["search"]["ok"] > 0
    assert not any(e["untyped"] for e in load["errors"].values())
    assert crash["kills"] == 20 and crash["doctor_runs"] == 20
    assert crash["jobs"].get("done", 0) > 0 and set(crash["jobs"]) == {"done"}
