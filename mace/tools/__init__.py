"""Workflow tools behind the CLI verbs: validate, benchmark, report, deploy."""
