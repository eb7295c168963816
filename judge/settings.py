"""The one settings object: environment variables prefixed ``RJ_`` and an optional ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RJ_", env_file=".env", extra="ignore")

    # Storage: SQLite file by default so a fresh machine runs with no server.
    database_url: str = "sqlite+aiosqlite:///./rubric-judge.db"
    database_echo: bool = False
    # PostgreSQL: seconds a connect, and each statement, may wait for the server before failing as an outage
    # (the writer then holds and spools verdicts); a database that drops packets would otherwise hang it.
    db_timeout_s: float = Field(default=30.0, gt=0)
    # Cache: unset means an in-process LRU.
    redis_url: str | None = None
    redis_prefix: str = "rj:"
    cache_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    cache_max_items: int = Field(default=100_000, ge=1)

    judges_file: Path | None = None
    rubrics_dir: Path | None = None
    # Bulk jobs: server-side input files (POST /v1/jobs with a path) must lie under this folder; unset: uploads only.
    jobs_input_dir: Path | None = None
    # A worker's hold on a chunk without a heartbeat: a killed worker's chunks go to another worker after this.
    job_lease_s: float = Field(default=30.0, gt=0)
    # Agreement studies: bootstrap resamples of GET /v1/agreement by default and at most (CPU time grows with
    # it), and ratings per POST /v1/ratings.
    agreement_n_boot: int = Field(default=200, ge=0)
    agreement_max_n_boot: int = Field(default=2000, ge=0)
    max_ratings_per_request: int = Field(default=100_000, ge=1)
    # Comma-separated bearer keys; unset or empty leaves /v1 open.
    api_keys: SecretStr | None = None

    max_samples_per_request: int = Field(default=1024, ge=1)
    max_text_chars: int = Field(default=200_000, ge=1)
    default_deadline_s: float | None = Field(default=None, gt=0)

    # RL rewards (/v1/rewards, /get_reward): rubric and judge when a request names none.
    reward_rubric: str = "prmed"
    reward_judge: str | None = None
    # /get_reward's reward for an item that could not be scored (flagged in extra_logs.judge_failed).
    reward_fallback: float = 0.0
    # Reward requests answer by then whatever is unfinished (under OpenRLHF's 180 s client timeout).
    reward_deadline_s: float | None = Field(default=150.0, gt=0)
    # /get_reward: fail (judge_failed) an item whose reward would mix expected and integer axis scores.
    reward_require_expected: bool = False
    # CoT and response are cut to these lengths before judging; the item is flagged ``truncated``.
    max_reasoning_chars: int | None = Field(default=None, ge=1)
    max_response_chars: int | None = Field(default=None, ge=1)

    # Rating studies (/ui/): the address raters' personal links start with, as raters' browsers reach the
    # service (e.g. https://judge.hospital.example); unset, the API uses the address a request came to and the
    # CLI http://127.0.0.1:8000.
    study_public_url: str | None = None

    log_level: str = "INFO"

    # Reliability (docs/reliability.md). Verdicts the store cannot take yet are held in memory up to this many,
    # the rest spill to files under spool_dir (replayed when the store answers, and at start-up).
    write_buffer_max: int = Field(default=10_000, ge=1)
    spool_dir: Path = Path("./rubric-judge-spool")
    # How long a request waits for its verdicts' commit before answering with them pending (usage.pending_writes).
    write_wait_s: float = Field(default=5.0, gt=0)
    # Under load (verdicts arriving while the last commit ran), the writer waits this long after the first
    # queued verdict so that one transaction takes many: at judge concurrency 64 answers trickle in a few at a
    # time, and each commit costs ~1 ms of CPU in round trips whatever its size. An idle writer commits at once.
    write_linger_ms: float = Field(default=10.0, ge=0, le=1000)
    # At shutdown, how long the store gets to take held verdicts before they are written to the spool.
    write_flush_timeout_s: float = Field(default=5.0, ge=0)
    # Bytes a request body may have on every route (streamed JSONL job uploads excepted): 413 past it.
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Comma-separated keys that may also publish rubrics, activate/reload reward models and create jobs from a
    # server path. With RJ_API_KEYS set and this unset, nobody may (plain keys never change what others get).
    admin_keys: SecretStr | None = None
    # A judge call may outlive its request's deadline by this much (so its verdict can still be cached), then
    # it is cancelled and its judge slot freed for fresh requests.
    judge_grace_s: float = Field(default=10.0, ge=0)
    # How often a replica reads rubrics registered elsewhere from the store (so "latest" agrees everywhere).
    rubric_refresh_s: float = Field(default=5.0, gt=0)
    # First-hour defaults (issue 11): the judge of requests and commands that name none (unset: the only judge
    # fit for the rubric's kind); log lines as text or one JSON object a line (with request ids).
    default_judge: str | None = None
    log_format: Literal["text", "json"] = "text"

    def api_key_set(self) -> frozenset[str]:
        """Every key that may call /v1 (admin keys included: an admin may do what a plain key may)."""
        return _keys(self.api_keys) | self.admin_key_set()

    def admin_key_set(self) -> frozenset[str]:
        return _keys(self.admin_keys)


def _keys(value: SecretStr | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    return frozenset(k.strip() for k in value.get_secret_value().split(",") if k.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
