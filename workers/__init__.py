"""Tasks, evaluators and executors."""
