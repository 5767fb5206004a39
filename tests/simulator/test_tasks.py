"""Task status over time, and the bounded task table."""

from __future__ import annotations

import pytest

from uptime_probe.simulator.tasks import Task, TaskStatus, TaskTable


@pytest.mark.parametrize(
    ("age", "stuck", "status"),
    [
        (0.0, False, TaskStatus.QUEUED),
        (0.66, False, TaskStatus.QUEUED),
        (0.67, False, TaskStatus.RUNNING),
        (1.99, False, TaskStatus.RUNNING),
        (2.0, False, TaskStatus.COMPLETED),
        (1e6, False, TaskStatus.COMPLETED),
        (0.1, True, TaskStatus.QUEUED),
        (2.0, True, TaskStatus.RUNNING),
        (1e6, True, TaskStatus.RUNNING),
    ],
)
def test_a_task_is_queued_then_running_then_completed(
    age: float, stuck: bool, status: TaskStatus
) -> None:
    task = Task(id="task_x", created_at=100.0, stuck=stuck)
    assert task.status_at(100.0 + age, complete_after=2.0) is status


def test_with_no_delay_a_task_is_completed_at_once() -> None:
    assert Task("t", 5.0, stuck=False).status_at(5.0, complete_after=0.0) is TaskStatus.COMPLETED


def test_the_table_forgets_the_oldest_tasks_beyond_its_bound() -> None:
    table = TaskTable(max_tasks=3)
    created = [table.create(float(i)) for i in range(5)]
    assert len(table) == 3
    assert [table.get(t.id) for t in created[:2]] == [None, None]
    assert [table.get(t.id) for t in created[2:]] == created[2:]


def test_task_ids_are_unique() -> None:
    table = TaskTable()
    ids = {table.create(0.0).id for _ in range(500)}
    assert len(ids) == 500
    assert all(i.startswith("task_") for i in ids)


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tasks"):
        TaskTable(max_tasks=0)
