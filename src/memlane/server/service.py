"""What a request may do, given its key: the tenant's Memory, and the key's user_ids (if it is bound to
some) checked on every call. Ids outside the key's reach are 404, as ids that do not exist."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..errors import MemlaneError, NotFoundError
from ..memory import Memory


class Forbidden(MemlaneError):
    """The key may not do this (not an admin key, or a user_id outside its user_ids)."""


class Unauthorized(MemlaneError):
    """No key, or not a live one."""


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str
    admin: bool
    user_ids: Optional[frozenset[str]]
    memory: Memory

    # ------------------------------------------------------------ reach

    def _scope_users(self, user_id: Optional[str], filters: Any) -> set[str]:
        users: set[str] = set()
        if user_id is not None:
            users.add(user_id)
        value = filters.get("user_id") if isinstance(filters, dict) else None
        if isinstance(value, str):
            users.add(value)
        elif isinstance(value, dict):
            for op, operand in value.items():
                if op == "eq" and isinstance(operand, str):
                    users.add(operand)
                elif op == "in" and isinstance(operand, list) and all(isinstance(v, str) for v in operand):
                    users.update(operand)
                else:
                    raise Forbidden("this key is bound to user_ids: name them with user_id, or a filter "
                                    "user_id equal to (or in) them")
        return users

    def check_scope(self, user_id: Optional[str] = None, filters: Any = None) -> None:
        """A key bound to user_ids reaches only their scopes: the request must name the user (top-level
        constraints are ANDed, so whatever else the filters say only narrows it)."""
        if self.user_ids is None:
            return
        users = self._scope_users(user_id, filters)
        if not users or not users <= self.user_ids:
            raise Forbidden("this key may only reach the scopes of its user_ids: give user_id (one of them)")

    def reachable(self, item: Optional[dict[str, Any]]) -> bool:
        return item is not None and (self.user_ids is None or item.get("user_id") in self.user_ids)

    def check_id(self, memory_id: str) -> dict[str, Any]:
        item = self.memory.get(memory_id)
        if not self.reachable(item):
            raise NotFoundError(f"memory {memory_id} not found")
        assert item is not None
        return item

    def check_unrestricted(self, what: str) -> None:
        if self.user_ids is not None:
            raise Forbidden(f"{what} needs a key that is not bound to user_ids")

    # ------------------------------------------------------------ calls

    def get(self, memory_id: str) -> Optional[dict[str, Any]]:
        item = self.memory.get(memory_id)
        return item if self.reachable(item) else None

    def update(self, memory_id: str, **changes: Any) -> dict[str, Any]:
        if self.user_ids is not None:
            self.check_id(memory_id)
        return self.memory.update(memory_id, **changes)

    def delete(self, memory_id: str) -> dict[str, Any]:
        if self.user_ids is not None:
            self.check_id(memory_id)
        return self.memory.delete(memory_id)

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        if self.user_ids is not None:
            self.check_id(memory_id)
        return self.memory.history(memory_id)  # an unknown id has no history: [] as Memory.history gives

    def batch(self, memories: Any) -> None:
        if self.user_ids is not None and isinstance(memories, list):
            for entry in memories:
                if isinstance(entry, dict) and isinstance(entry.get("memory_id"), str):
                    self.check_id(entry["memory_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's state; for a key bound to user_ids, its result lists only the memories the key reaches."""
        job = self.memory.job(job_id)
        result = job.get("result")
        if self.user_ids is not None and isinstance(result, dict) and isinstance(result.get("results"), list):
            kept = [r for r in result["results"] if isinstance(r, dict) and isinstance(r.get("id"), str)
                    and self.reachable(self.memory.get(r["id"]))]
            job = {**job, "result": {**result, "results": kept, "relations": []}}
        return job

    def users(self) -> dict[str, Any]:
        result = self.memory.users()
        if self.user_ids is None:
            return result
        rows = [r for r in result["results"] if r.get("type") == "user" and r.get("name") in self.user_ids]
        return {**result, "results": rows, "total": len(rows)}

    def delete_users(self, user_id: Optional[str], agent_id: Optional[str], run_id: Optional[str]) -> dict[str, Any]:
        if self.user_ids is not None and (user_id not in self.user_ids or agent_id is not None or run_id is not None):
            raise Forbidden("this key may delete only its own user_ids (user_id alone)")
        return self.memory.delete_users(user_id=user_id, agent_id=agent_id, run_id=run_id)
