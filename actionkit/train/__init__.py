"""Training: objectives as task modules (:mod:`.tasks`), their loss terms (:mod:`.losses`)."""

from actionkit.train.tasks import Task, TaskConfig, TaskOutput

__all__ = ["Task", "TaskConfig", "TaskOutput"]
