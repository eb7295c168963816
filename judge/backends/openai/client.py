"""The pooled ``AsyncOpenAI`` client and the raw chat-completions post shared by every OpenAI-protocol caller.

The judge (:mod:`judge.backends.openai.judge`), the simulator's chat models (:mod:`judge.simulator.chat`) and
the draft generator (:mod:`judge.jobs.generator`) reach their servers the same way; one place keeps the transport
choice, the connection pool and the connection-refused test alike for all of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import cast

import httpx2
import openai
import orjson
from openai._models import FinalRequestOptions
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from judge.backends.openai.transport import lean_client
from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile

# The SDK's telemetry headers (its language, version, OS, architecture, runtime): no server needs them to answer,
# and each header is normalised, merged and encoded again on every request (~7 % of the SDK's CPU per call).
_TELEMETRY_HEADERS = (
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Async",
)


def api_key(profile: JudgeProfile) -> str:
    """The key from ``profile.api_key_env``; servers without auth (local vLLM) get a placeholder."""
    if profile.api_key_env is None:
        return "EMPTY"
    if profile.api_key_env not in os.environ:
        raise JudgeUnavailable(
            f"judge profile {profile.name!r} reads its API key from the environment variable "
            f"{profile.api_key_env}, which is not set",
            field="api_key_env",
        )
    return os.environ[profile.api_key_env] or "EMPTY"


def pooled_client(*, base_url: str | None, api_key: str, timeout_s: float, concurrency: int) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` client over aiohttp whose pool holds ``concurrency`` connections.

    Retries are tenacity's alone (``max_retries=0``), so they are counted and bounded in one place. aiohttp
    rather than httpx: httpcore's pool scans every connection on each request, which dominated the CPU profile
    at judge concurrency 64 (see bench/README.md). The SDK's telemetry headers are left out (``openai.Omit``).
    """
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key,
        timeout=timeout_s,
        max_retries=0,
        # The SDK takes Omit() in default_headers to drop one of its own (typed as str there).
        default_headers=cast(dict[str, str], {name: openai.Omit() for name in _TELEMETRY_HEADERS}),
        http_client=lean_client(concurrency=concurrency, timeout_s=timeout_s),
    )


class CompletionPoster:
    """POSTs serialised chat-completions bodies to one client's ``/chat/completions``, hot-path style.

    The body is serialised once by the caller with orjson (the SDK's stdlib encoder was 7 % of the API's CPU on
    prompts of several KB of escaped Chinese text, and its typed-parameter walk about half a millisecond a call).
    Through the SDK's own generic ``request`` (what its raw ``post`` calls: same auth, headers, timeouts and error
    types), with the request options built once and copied per call, instead of built anew from keyword arguments
    (``FinalRequestOptions.construct`` deep-copies its defaults every time), and an absolute URL, which spares the
    SDK merging the path into its base URL per call: ~0.06 ms of CPU per call, an eighth of the SDK's cost.
    """

    def __init__(self, client: openai.AsyncOpenAI, *, timeout_s: float | None = None) -> None:
        self._client = client
        base = client.base_url  # the SDK ends its path with "/"
        # The path appended, the query (some gateways want one) kept: the SDK's own merge of a relative path would
        # write the path after the query.
        url = str(base.copy_with(path=base.path + "chat/completions"))
        if timeout_s is None:
            self._template = FinalRequestOptions.construct(method="post", url=url)
        else:
            self._template = FinalRequestOptions.construct(method="post", url=url, timeout=timeout_s)

    async def post(self, payload: bytes) -> httpx2.Response:
        return await self._client.request(httpx2.Response, self._template.model_copy(update={"content": payload}))


def parse_completion(raw: bytes, fail: Callable[[str], Exception]) -> ChatCompletion:
    """Parse a chat completion in pydantic-core (~7x faster than the SDK's own object building, which
    dominated with logprobs: one object per returned token); servers whose answer does not validate
    strictly (a missing ``created``…) still get the SDK's lenient construction.

    An answer that is not a JSON object raises ``fail(problem)``, ``problem`` worded to follow the
    caller's name for the server (``"answered with invalid JSON: …"``).
    """
    try:
        return ChatCompletion.model_validate_json(raw)
    except ValidationError:
        pass
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise fail(f"answered with invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise fail("answered with a JSON value that is not an object")
    return ChatCompletion.construct(**data)


def refused(exc: BaseException) -> bool:
    """A connection refused or reset somewhere down the cause chain.

    The aiohttp transport reports every failed connect as a connect *timeout*; a refused connection is
    an unreachable server (judge_error), not a slow one (timeout), and callers treat the two differently.
    """
    link: BaseException | None = exc
    for _ in range(8):
        if link is None:
            return False
        if isinstance(link, ConnectionError) or isinstance(getattr(link, "os_error", None), ConnectionError):
            return True
        link = link.__cause__ or link.__context__
    return False
