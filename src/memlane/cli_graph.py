"""`memlane graph`: a scope's relations (as get_all returns them) as text, Graphviz dot or Mermaid."""
from __future__ import annotations

import json
import re
from typing import Any

FORMATS = ("text", "json", "dot", "mermaid")


def text(relations: list[dict[str, Any]]) -> str:
    if not relations:
        return "(no relations)"
    lines = []
    for r in relations:
        since = f"  since {r['valid_from'][:10]}" if r.get("valid_from") else ""
        until = f"  until {r['valid_to'][:10]}" if r.get("valid_to") else ""
        lines.append(f"{r['source']} --{r['relationship']}--> {r['target']}{since}{until}")
    return "\n".join(lines)


def _dot_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def dot(relations: list[dict[str, Any]]) -> str:
    lines = ["digraph memlane {"]
    for r in relations:
        lines.append(f"  {_dot_string(r['source'])} -> {_dot_string(r['target'])} "
                     f"[label={_dot_string(r['relationship'])}];")
    lines.append("}")
    return "\n".join(lines)


def _mermaid_label(value: str) -> str:
    # Mermaid has no escape inside ["..."] labels: quotes become #quot; and line breaks spaces.
    return value.replace('"', "#quot;").replace("\n", " ")


def mermaid(relations: list[dict[str, Any]]) -> str:
    ids: dict[str, str] = {}

    def node(name: str) -> str:
        if name not in ids:
            ids[name] = f"n{len(ids)}"
            return f'{ids[name]}["{_mermaid_label(name)}"]'
        return ids[name]

    lines = ["graph LR"]
    for r in relations:
        label = re.sub(r"[|]", "/", _mermaid_label(r["relationship"]))  # | ends an edge label
        lines.append(f"  {node(r['source'])} -->|{label}| {node(r['target'])}")
    return "\n".join(lines)


def render(relations: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(relations, indent=2, ensure_ascii=False)
    return {"text": text, "dot": dot, "mermaid": mermaid}[fmt](relations)
