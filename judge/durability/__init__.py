"""Durable verdicts: store outages are retried, overflow spills to a local spool replayed later.

The promise (docs/reliability.md): a verdict id that was answered is in the store once the store is reachable,
through outages, unstorable rows and restarts.
"""
