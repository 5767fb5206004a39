"""Back-end tasks: created queued, then running, then completed after a delay.

A task's status is computed from its age on every read, so there is no worker to run and a
fake clock moves tasks along in tests. The table is bounded: beyond `max_tasks` the oldest
task is forgotten (its id then answers 404), so a long demo does not grow memory.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"


DEFAULT_MAX_TASKS = 10_000


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    created_at: float  # clock seconds
    stuck: bool  # created under `task_create: stuck`: never completes

    def status_at(self, now: float, complete_after: float) -> TaskStatus:
        """Queued for the first third of `complete_after`, running until it, then completed."""
        age = now - self.created_at
        if age < complete_after / 3:
            return TaskStatus.QUEUED
        if self.stuck or age < complete_after:
            return TaskStatus.RUNNING
        return TaskStatus.COMPLETED


class TaskTable:
    """Tasks by id, oldest evicted first beyond `max_tasks`."""

    def __init__(self, max_tasks: int = DEFAULT_MAX_TASKS) -> None:
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, got {max_tasks}")
        self.max_tasks = max_tasks
        self._tasks: OrderedDict[str, Task] = OrderedDict()

    def create(self, now: float, *, stuck: bool = False) -> Task:
        task = Task(id=f"task_{secrets.token_hex(8)}", created_at=now, stuck=stuck)
        self._tasks[task.id] = task
        while len(self._tasks) > self.max_tasks:
            self._tasks.popitem(last=False)
        return task

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def __len__(self) -> int:
        return len(self._tasks)
