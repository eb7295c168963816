"""Retention and export: what may leave the database (prune) and how the record leaves it (export).

- :mod:`judge.retention.policy`: ages such as ``30d`` and the prune policy.
- :mod:`judge.retention.repository`: the SQL (candidates, protections, sizes, deletes).
- :mod:`judge.retention.service`: plan and run a prune; a dry run changes nothing.
- :mod:`judge.retention.export`: verdicts streamed out as JSONL or Parquet in constant memory.
"""
