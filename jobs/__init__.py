"""Your jobs: one module, or one package when a job has helpers, per job. The engine imports this package by name."""
