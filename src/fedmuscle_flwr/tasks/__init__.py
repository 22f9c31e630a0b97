"""Task kinds: head, loss, metric meter and target adapter (no flwr imports)."""

from fedmuscle_flwr.tasks.base import TASKS, Meter, Task
from fedmuscle_flwr.tasks.registry import get_task, list_tasks, task_options

__all__ = ["TASKS", "Meter", "Task", "get_task", "list_tasks", "task_options"]
