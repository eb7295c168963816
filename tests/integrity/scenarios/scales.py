"""4. Mixed scales: logprob expectations beside sampled integers in one group."""

from __future__ import annotations

import math
from typing import Any

import orjson

from tests.integrity.scenarios.common import SAFE, naive_verdict
from tests.integrity.scenarios.harness import Context, Outcome, completion, messages, rewards, scenario, value
from tests.support.openai_server import ChatRequest, RawBody


def _token(text: str, top: dict[str, float]) -> dict[str, Any]:
    return {
        "token": text, "logprob": math.log(top.get(text, 1.0)), "bytes": list(text.encode()),
        "top_logprobs": [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in top.items()],
    }  # fmt: skip


def _logprob_answer(request: ChatRequest, *, trailing_newline: bool) -> RawBody:
    """Every axis 5 with p(5) = 0.8, p(4) = 0.2 (E = 4.8); the tokens may spell a trailing newline."""
    keys = request.axis_keys
    pieces: list[dict[str, Any]] = []
    content = '{"axes": {'
    pieces.append(_token(content, {content: 1.0}))
    for i, key in enumerate(keys):
        head = f'{", " if i else ""}"{key}": {{"rationale": "好", "score": '
        content += head + "5}"
        pieces += [_token(head, {head: 1.0}), _token("5", {"5": 0.8, "4": 0.2}), _token("}", {"}": 1.0})]
    content += "}}"
    pieces.append(_token("}}", {"}}": 1.0}))
    if trailing_newline:
        pieces.append(_token("\n", {"\n": 1.0}))
    body = {
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content},
                     "logprobs": {"content": pieces}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": len(pieces), "total_tokens": len(pieces) + 1},
    }  # fmt: skip
    return RawBody(orjson.dumps(body))


@scenario("mixed_scales", "4. a trailing newline token drops E: integer 5 beside E = 4.8 in one group")
async def mixed_scales(ctx: Context) -> Outcome:
    async with ctx.client() as client:
        out = []
        for newline in (False, True):
            ctx.server.default = lambda request, nl=newline: _logprob_answer(request, trailing_newline=nl)
            items = await rewards(
                client, {"messages": messages(), "completion": completion(SAFE + ("。" if newline else ""))},
                judge="loop-lp", rubric="prmed@1",
            )  # fmt: skip
            out.append(value(items[0]))
    ctx.server.default = naive_verdict
    return Outcome(out[0], out[1])
