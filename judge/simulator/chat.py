"""Calls to simulator and policy models: one pooled ``AsyncOpenAI`` client per profile, tenacity retries.

Retries follow the judge's rules (:mod:`judge.backends.openai.retry`): 429, 408, 5xx, timeouts and lost
connections are retried with jittered backoff honouring ``Retry-After``; other 4xx fail at once.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import openai
import orjson
from openai.types.chat import ChatCompletion
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_before_delay, wait_random_exponential

from judge.backends.openai.client import CompletionPoster, parse_completion, pooled_client
from judge.backends.openai.retry import BACKOFF_MAX_S, BACKOFF_MULTIPLIER_S, is_retryable, wait_retry_after
from judge.profiles import ChatProfile
from judge.simulator.errors import SimulatorFailed


@dataclass(frozen=True)
class ChatAnswer:
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class ChatModel:
    """One profile's model: ``complete(messages)`` with the profile's sampling, concurrency cap and retries."""

    def __init__(self, profile: ChatProfile, client: openai.AsyncOpenAI | None = None) -> None:
        self.profile = profile
        self._owns_client = client is None
        # Pooled over aiohttp, as the judge's: httpcore's pool dominated the CPU profile at high concurrency.
        self._client = client or pooled_client(
            base_url=profile.base_url,
            api_key=_api_key(profile),
            timeout_s=profile.timeout_s,
            concurrency=profile.concurrency,
        )
        self._poster = CompletionPoster(self._client, timeout_s=profile.timeout_s)
        self._semaphore = asyncio.Semaphore(profile.concurrency)

    async def complete(
        self, messages: list[dict[str, str]], *, seed: int | None = None, json_output: bool = False
    ) -> ChatAnswer:
        """The first choice's text; raises :class:`SimulatorFailed` once retries are spent."""
        profile = self.profile
        body: dict[str, Any] = {
            "model": profile.model,
            "messages": messages,
            "temperature": profile.temperature,
            "max_tokens": profile.max_tokens,
        }
        if seed is not None:
            body["seed"] = seed
        if json_output and profile.structured_output == "json_object":
            body["response_format"] = {"type": "json_object"}
        body.update(profile.extra_body)
        # Serialised once by orjson and sent through the SDK's raw ``post`` (same client, auth and errors as
        # ``chat.completions.create``): the SDK's typed-parameter walk was most of a call's CPU (bench/README.md).
        payload = orjson.dumps(body)
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(profile.max_retries + 1) | stop_before_delay(profile.retry_budget_s),
            wait=wait_retry_after(wait_random_exponential(multiplier=BACKOFF_MULTIPLIER_S, max=BACKOFF_MAX_S)),
            reraise=True,
        )

        async def attempt() -> ChatCompletion:
            async with self._semaphore:
                raw = await self._poster.post(payload)
            return _completion(raw.content, profile.name, _field(json_output))

        try:
            completion: ChatCompletion = await retrying(attempt)
        except openai.APIStatusError as exc:
            raise SimulatorFailed(
                f"{profile.name} answered HTTP {exc.status_code}: {exc.message}", field=_field(json_output)
            ) from exc
        except openai.OpenAIError as exc:
            raise SimulatorFailed(f"{profile.name} failed: {exc}", field=_field(json_output)) from exc
        if not completion.choices:
            raise SimulatorFailed(f"{profile.name} answered with no choices", field=_field(json_output))
        choice = completion.choices[0]
        usage = completion.usage
        return ChatAnswer(
            content=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()


def _completion(raw: bytes, name: str, field: str) -> ChatCompletion:
    """Strict parsing first (fast); servers whose answer misses optional-looking fields get lenient parsing."""
    return parse_completion(raw, lambda problem: SimulatorFailed(f"{name} {problem}", field=field))


def _field(json_output: bool) -> str:
    return "simulator" if json_output else "policy"


def _api_key(profile: ChatProfile) -> str:
    if profile.api_key_env is None:
        return "EMPTY"
    value = os.environ.get(profile.api_key_env)
    if value is None:
        raise SimulatorFailed(
            f"profile {profile.name!r} reads its API key from {profile.api_key_env}, which is not set",
            field="api_key_env",
        )
    return value or "EMPTY"


class ChatModels:
    """One :class:`ChatModel` per profile, made on first use and closed together."""

    def __init__(self) -> None:
        self._models: dict[str, ChatModel] = {}

    def get(self, profile: ChatProfile) -> ChatModel:
        key = f"{profile.name}:{profile.model_dump_json()}"
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = ChatModel(profile)
        return model

    async def aclose(self) -> None:
        models, self._models = list(self._models.values()), {}
        for model in models:
            await model.aclose()
