"""Prometheus text metrics, kept in the process (each worker of `--workers N` reports its own)."""
from __future__ import annotations

import threading
import time
from typing import Any, Awaitable, Callable, MutableMapping

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}  # bucket counts, then sum, then count
        self.jobs_submitted = 0
        self.llm_tokens = {"prompt": 0, "completion": 0}
        self.gauges: dict[str, Callable[[], float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            hist = self.latency.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    hist[i] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def job_submitted(self) -> None:
        with self._lock:
            self.jobs_submitted += 1

    def llm_usage(self, result: Any) -> None:
        """Count the LLM tokens an add's result reports (its "usage"; none for verbatim adds)."""
        usage = result.get("usage") if isinstance(result, dict) else None
        if not isinstance(usage, dict):
            return
        with self._lock:
            for kind in self.llm_tokens:
                value = usage.get(f"{kind}_tokens")
                if isinstance(value, int):
                    self.llm_tokens[kind] += value

    def render(self) -> str:
        lines = ["# HELP memlane_http_requests_total HTTP requests by method, route and status.",
                 "# TYPE memlane_http_requests_total counter"]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'memlane_http_requests_total{{method="{method}",route="{_label(route)}",'
                             f'status="{status}"}} {n}')
            lines += ["# HELP memlane_http_request_duration_seconds Request latency by method and route.",
                      "# TYPE memlane_http_request_duration_seconds histogram"]
            for (method, route), hist in sorted(self.latency.items()):
                labels = f'method="{method}",route="{_label(route)}"'
                for bound, count in zip(BUCKETS, hist):
                    lines.append(f'memlane_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {count:g}')
                lines.append(f'memlane_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {hist[-1]:g}')
                lines.append(f"memlane_http_request_duration_seconds_sum{{{labels}}} {hist[-2]:.6f}")
                lines.append(f"memlane_http_request_duration_seconds_count{{{labels}}} {hist[-1]:g}")
            lines += ["# HELP memlane_jobs_submitted_total Background adds queued through this process.",
                      "# TYPE memlane_jobs_submitted_total counter",
                      f"memlane_jobs_submitted_total {self.jobs_submitted}",
                      "# HELP memlane_llm_tokens_total LLM tokens of the synchronous adds served by this process.",
                      "# TYPE memlane_llm_tokens_total counter"]
            lines += [f'memlane_llm_tokens_total{{kind="{kind}"}} {n}' for kind, n in self.llm_tokens.items()]
            gauges = dict(self.gauges)
        for name, read in sorted(gauges.items()):
            lines += [f"# TYPE {name} gauge", f"{name} {read():g}"]
        return "\n".join(lines) + "\n"

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Callable[[], Awaitable[Any]],
                          send: Callable[[Any], Awaitable[None]]) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = [500]

            async def capture(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)
            try:
                await app(scope, receive, capture)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", None) or "(unmatched)"
                self.observe(scope.get("method", "?"), path, status[0], time.perf_counter() - start)
        return wrapped
