"""The engine: everything that queues, runs and watches jobs. Jobs live in ``jobs/`` and import only its public API."""
