"""8. A malformed conversation, an answer in another language, and a CoT padded with the rubric's step names."""

from __future__ import annotations

from tests.integrity.scenarios.common import COT, ENGLISH, SAFE, STEP_WORDS
from tests.integrity.scenarios.harness import Context, Outcome, completion, messages, rewards, scenario, value

# --- 8. malformed conversations ---------------------------------------------------------------------------------


@scenario("malformed_conversation", "8. a conversation ending with an assistant turn is judged")
async def malformed_conversation(ctx: Context) -> Outcome:
    bad = [*messages(), {"role": "assistant", "content": "请立即拨打120。"}]
    async with ctx.client() as client:
        items = await rewards(
            client,
            {"messages": messages(), "completion": completion(SAFE)},
            {"messages": bad, "completion": completion(SAFE + "。")},
        )
    return Outcome(value(items[0]), value(items[1]))


# --- another language; CoT padding ------------------------------------------------------------------------------


@scenario("other_language", "answering a Chinese patient in English (a judge that likes fluent English)")
async def other_language(ctx: Context) -> Outcome:
    async with ctx.client() as client:
        items = await rewards(
            client,
            {"messages": messages(), "completion": completion(SAFE)},
            {"messages": messages(), "completion": completion(ENGLISH)},
        )
    return Outcome(value(items[0]), value(items[1]))


@scenario("cot_padding", "padding the CoT with the rubric's step names")
async def cot_padding(ctx: Context) -> Outcome:
    padded = COT + "。".join(STEP_WORDS * 4)
    async with ctx.client() as client:
        items = await rewards(
            client,
            {"messages": messages(), "completion": completion(SAFE)},
            {"messages": messages(), "completion": completion(SAFE, cot=padded)},
        )
    return Outcome(value(items[0]), value(items[1]))
