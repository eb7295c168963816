"""Rubrics: the schema, the built-in rubrics, the registry and score aggregation. Pure: no I/O but files."""
