"""Background processes: the Celery app and tasks (production) and the in-process loops (embedded mode)."""
