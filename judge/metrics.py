"""Prometheus metrics of the scoring engine; the API serves them at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUEST_LATENCY = Histogram(
    "rj_request_seconds", "HTTP request latency", ["route", "method", "status"], buckets=_LATENCY_BUCKETS
)
JUDGE_CALL_LATENCY = Histogram(
    "rj_judge_call_seconds", "Latency of one judge backend call", ["judge", "outcome"], buckets=_LATENCY_BUCKETS
)
JUDGE_RETRIES = Counter("rj_judge_retries_total", "Judge calls retried", ["judge", "reason"])
PARSE_FAILURES = Counter("rj_judge_parse_failures_total", "Judge answers that could not be parsed", ["judge"])
REPAIRS = Counter("rj_judge_repairs_total", "Repair re-asks after an unparsable answer", ["judge", "outcome"])
CACHE_HITS = Counter("rj_cache_hits_total", "Verdicts served from the cache", ["tier"])
CACHE_MISSES = Counter("rj_cache_misses_total", "Verdicts not found in cache or store")
CACHE_ERRORS = Counter("rj_cache_errors_total", "Cache operations that failed (scoring went on)")
AXIS_STATUS = Counter("rj_axis_results_total", "Axis results by status", ["judge", "status"])
JUDGE_COST = Counter(
    "rj_judge_cost_total",
    "What judge calls cost at the profile's token prices (in the currency label), from the tokens providers reported",
    ["judge", "currency"],
)
JUDGE_TOKENS = Counter(
    "rj_judge_tokens_total",
    "Judge tokens by kind: prompt, cached (the part of prompt served from the provider's prefix cache), completion",
    ["judge", "kind"],
)
JUDGE_HEDGES = Counter(
    "rj_judge_hedges_total",
    "Extra judge calls sent because an answer was slow, by outcome: won (the hedge answered first), lost, failed",
    ["judge", "outcome"],
)
# Durability (docs/reliability.md): verdicts answered but not yet stored, and where they went.
PENDING_WRITES = Gauge("rj_verdicts_pending_writes", "Answered verdicts held in memory for the store (an outage)")
VERDICTS_SPOOLED = Counter("rj_verdicts_spooled_total", "Verdicts written to the local spool (buffer full or shutdown)")
VERDICTS_REPLAYED = Counter("rj_verdicts_replayed_total", "Spooled verdicts stored by a replay")
VERDICTS_REFUSED = Counter("rj_verdicts_refused_total", "Verdicts the store refused on their own (kept in rejected-*)")
JUDGE_CALLS_ABANDONED = Counter(
    "rj_judge_calls_abandoned_total", "Judge calls cancelled after the grace past every waiter's deadline"
)
