"""A small rule-based stand-in for an LLM, for lifecycle tests of the pipeline's logic. It reads the prompt
memlane built (existing memories with integer ids, numbered new messages, conversation date) and answers the
way a good model would for a tiny language of statements:

  "I like X" / "I love X"                -> fact "Likes X" (NONE if already known)
  "My favourite Y is Z"                  -> fact "Favourite Y is Z" (UPDATE of "Favourite Y is ...")
  "I don't like X anymore"               -> DELETE of "Likes X"
  "... last Saturday ..."                -> the fact carries the absolute date of the Saturday before the
                                            conversation date
  assistant "I recommend X"              -> fact "Assistant recommended X" (attributed to the assistant)
  assistant "My name is N" (agent mode)  -> fact "Name is N" (attributed to the assistant)

It is not shipped with memlane; tests register it as an LLM provider or serve it over HTTP.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from memlane.llms.base import LLMRequest, LLMResponse

_EXISTING = re.compile(r"^(\d+): (.*)$")
_NEW = re.compile(r"^\[(\d+)\] (\w+)(?: \(([^)]*)\))?: (.*)$")


def parse_prompt(user_text: str) -> tuple[str, dict[int, str], list[tuple[int, str, str]]]:
    date, existing, new = "", {}, []
    section = None
    for line in user_text.splitlines():
        if line.startswith("Conversation date:"):
            date = line.split(":", 1)[1].strip()
        elif line.startswith("Existing memories"):
            section = "existing"
        elif line.startswith("NEW messages"):
            section = "new"
        elif section == "existing" and _EXISTING.match(line):
            i, text = _EXISTING.match(line).groups()
            existing[int(i)] = text
        elif section == "new" and _NEW.match(line):
            i, role, _name, text = _NEW.match(line).groups()
            new.append((int(i), role, text))
    return date, existing, new


def _last_saturday(date: str) -> str:
    day = dt.date.fromisoformat(date)
    back = (day.weekday() - 5) % 7 or 7
    return (day - dt.timedelta(days=back)).isoformat()


def decide(system: str, user_text: str) -> dict[str, Any]:
    date, existing, new = parse_prompt(user_text)
    agent_mode = "memory manager of an AI agent" in system
    by_text = {text.lower(): i for i, text in existing.items()}
    decisions: list[dict[str, Any]] = []

    def emit(event: str, text: str, idx: int, who: str, mid: Any = None) -> None:
        decisions.append({"event": event, "id": mid, "text": text, "source_messages": [idx],
                          "attributed_to": who})

    def fact(text: str, idx: int, who: str) -> None:
        mid = by_text.get(text.lower())
        emit("NONE" if mid is not None else "ADD", text, idx, who, mid)

    for idx, role, text in new:
        low = text.lower().rstrip(".!")
        if role == "user":
            if m := re.match(r"i (?:don't|do not) like (.+?) anymore", low):
                target = f"likes {m.group(1)}"
                if target in by_text:
                    emit("DELETE", existing[by_text[target]], idx, "user", by_text[target])
            elif m := re.match(r"i (?:like|love) (.+)", low):
                thing = m.group(1)
                if "last saturday" in thing:
                    thing = thing.replace("last saturday", f"on {_last_saturday(date)}")
                fact(f"Likes {thing}", idx, "user")
            elif m := re.match(r"my favou?rite (\w+) is (.+)", low):
                new_text = f"Favourite {m.group(1)} is {m.group(2)}"
                old = next((i for t, i in by_text.items() if t.startswith(f"favourite {m.group(1)} is ")), None)
                if old is None:
                    emit("ADD", new_text, idx, "user")
                elif existing[old].lower() == new_text.lower():
                    emit("NONE", new_text, idx, "user", old)
                else:
                    emit("UPDATE", new_text, idx, "user", old)
        elif role == "assistant":
            if m := re.match(r"i recommend (.+)", low):
                fact(f"Assistant recommended {m.group(1)}", idx, "assistant")
            elif agent_mode and (m := re.match(r"my name is (.+)", low)):
                fact(f"Name is {m.group(1).title()}", idx, "assistant")
    return {"memory": decisions}


class ScriptedLLM:
    """An in-process LLM provider: `answers` overrides replies in order (str = raw text), else `decide`."""

    def __init__(self, config: dict[str, Any] | None = None):
        self.requests: list[LLMRequest] = []
        self.answers: list[Any] = list((config or {}).get("answers", []))

    def generate(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            text = answer if isinstance(answer, str) else json.dumps(answer)
        else:
            system = request.messages[0]["content"]
            user = next(m["content"] for m in request.messages if m["role"] == "user")
            if request.schema_name == "procedural_memory":
                text = json.dumps({"summary": "Steps: " + " | ".join(user.splitlines())})
            else:
                text = json.dumps(decide(system, user))
        return LLMResponse(content=text, prompt_tokens=100, completion_tokens=20, model="scripted")
