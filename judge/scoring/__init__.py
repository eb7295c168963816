"""The Scorer's parts: cache keys, group-mode planning, judge calls in flight, outcomes and results.

The Scorer itself (the main flow) stays in :mod:`judge.scorer`.
"""
