"""The generator of curation: any OpenAI-compatible model writes a CoT (five steps) + response, then refines it.

A generator is a judges-file profile with ``backend: openai`` (its ``temperature``, ``max_tokens``, ``concurrency``,
``timeout_s``, ``max_retries`` and ``extra_body`` apply). Drafts come back as a ``<think>`` block and a response;
a server that returns the reasoning separately (``reasoning_content``, as DeepSeek's does) works too.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from judge.backends.openai.client import pooled_client, refused
from judge.backends.openai.fences import fence, new_nonce
from judge.backends.openai.retry import retried
from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile
from judge.samples import Message, split_completion
from judge.verdicts import Usage
from rubrics.schema import Language

_TEXT: dict[Language, dict[str, str]] = {
    "zh": {
        "system": (
            "你是一名经验丰富、耐心细致的全科医生，正在线上回答患者的问题。患者的表达可能口语化、含糊、"
            "带方言、有错别字或夹杂强烈情绪。\n"
            "先在 <think> 与 </think> 之间写出思维链，严格按以下五步，每步单独成段并标明序号：\n"
            "1. 情绪感知：识别患者话语中隐含的情绪，并据此确定回复的语气。\n"
            "2. 扰动识别：找出口语、含糊、方言、情绪化表达或错别字等扰动，标出原文片段并解释其本意。\n"
            "3. 话语纠正：把患者的话改写成临床上可理解的规范表述，不增加也不遗漏事实。\n"
            "4. 主诉提取：排除干扰信息，写出核心的临床诉求。\n"
            "5. 医学推理：围绕主诉进行全面、严谨的医学推理，识别危险信号。\n"
            "然后在 </think> 之后写给患者的最终回复：医学上准确，识别并提示危险信号，必要时明确建议就医，"
            "给出具体可行的下一步，语气与患者的情绪和理解能力相称，且与思维链的结论一致。"
        ),
        "refine": (
            "下面是一段医患对话、你之前写的回答，以及评审专家对该回答的意见。请按评审意见重写一份完整的新回答："
            "仍然先写 <think>…</think> 思维链（五个步骤），再写最终回复。只输出新回答本身。"
        ),
        "conversation": "# 对话",
        "user": "患者",
        "assistant": "医生（历史回复）",
        "system_turn": "系统提示",
        "previous": "# 你之前的回答",
        "feedback": "# 评审意见",
    },
    "en": {
        "system": (
            "You are an experienced, patient general practitioner answering patients online. Patients may write "
            "colloquially, vaguely, in dialect, with typos or with strong emotion.\n"
            "First write your chain of thought between <think> and </think>, in exactly these five numbered steps:\n"
            "1. Emotion perception: recognise the emotion implicit in the patient's words and let it set your tone.\n"
            "2. Perturbation identification: find colloquial, vague, dialectal or emotional wording and typos, quote "
            "the spans and say what was meant.\n"
            "3. Utterance correction: rewrite the patient's message in clinically interpretable terms, adding and "
            "losing no facts.\n"
            "4. Chief complaint extraction: set distractions aside and state the core clinical request.\n"
            "5. Medical reasoning: reason thoroughly and rigorously from the chief complaint; recognise red flags.\n"
            "Then, after </think>, write the final response to the patient: medically accurate, red flags named and "
            "escalation advised where needed, concrete next steps, a tone that fits the patient's emotional state "
            "and literacy, consistent with the chain of thought."
        ),
        "refine": (
            "Below are a patient conversation, the answer you wrote before, and a reviewer's feedback on it. Write "
            "a complete new answer that follows the feedback: the <think>…</think> chain of thought (five steps) "
            "first, then the final response. Output only the new answer."
        ),
        "conversation": "# Conversation",
        "user": "patient",
        "assistant": "doctor (earlier turn)",
        "system_turn": "system prompt",
        "previous": "# Your previous answer",
        "feedback": "# Reviewer's feedback",
    },
}

_LABELS = {"system": "SYSTEM_PROMPT", "user": "PATIENT_MESSAGE", "assistant": "ASSISTANT_MESSAGE"}


def as_completion(reasoning: str, response: str) -> str:
    """A draft as one assistant message: the CoT in a ``<think>`` block, then the response."""
    return f"<think>\n{reasoning}\n</think>\n\n{response}"


def draft_messages(conversation: list[Message], language: Language) -> list[dict[str, str]]:
    """The first draft: the generator's instructions, then the conversation as chat turns."""
    messages = [{"role": "system", "content": _TEXT[language]["system"]}]
    messages += [{"role": m.role, "content": m.content} for m in conversation]
    return messages


def refine_messages(
    conversation: list[Message], reasoning: str, response: str, feedback: str, language: Language
) -> list[dict[str, str]]:
    """A refinement: one request with the conversation and the previous draft fenced as data, and the feedback."""
    text = _TEXT[language]
    nonce = new_nonce()
    parts = [text["refine"], text["conversation"]]
    for i, message in enumerate(conversation, start=1):
        who = {"user": text["user"], "assistant": text["assistant"], "system": text["system_turn"]}[message.role]
        parts.append(f"## {i} · {who}")
        parts.append(fence(message.content, _LABELS[message.role], nonce))
    parts += [text["previous"], fence(as_completion(reasoning, response), "PREVIOUS_ANSWER", nonce)]
    parts += [text["feedback"], feedback]
    return [{"role": "system", "content": text["system"]}, {"role": "user", "content": "\n\n".join(parts)}]


@dataclass(frozen=True, slots=True)
class Draft:
    reasoning: str
    response: str
    usage: Usage


class GenerationFailed(Exception):
    """A generator call that failed after its retries, or whose answer cannot be used."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Generator:
    """Writes drafts with one profile's model; bounded by the profile's concurrency, retried like a judge call."""

    def __init__(self, profile: JudgeProfile, client: openai.AsyncOpenAI | None = None) -> None:
        if profile.backend != "openai" or not profile.model:
            raise JudgeUnavailable(
                f"generator {profile.name!r} must be an openai profile with a model", field="generator"
            )
        self.profile = profile
        self._owns_client = client is None
        # The judges' pooled client (aiohttp, a pool of ``concurrency`` connections, retries left to tenacity).
        self._client = client or pooled_client(
            base_url=profile.base_url,
            api_key=_api_key(profile),
            timeout_s=profile.timeout_s,
            concurrency=profile.concurrency,
        )
        self._semaphore = asyncio.Semaphore(profile.concurrency)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()

    async def generate(self, messages: list[dict[str, str]]) -> Draft:
        profile = self.profile
        body: dict[str, Any] = {
            "model": profile.model,
            "messages": messages,
            "temperature": profile.temperature,
            "max_tokens": profile.max_tokens,
            **profile.extra_body,
        }
        retries = 0

        def count_retry(_: BaseException) -> None:
            nonlocal retries
            retries += 1

        async def attempt() -> ChatCompletion:
            async with self._semaphore:
                return await self._client.post(
                    "/chat/completions", cast_to=ChatCompletion, body=body, options={"timeout": profile.timeout_s}
                )

        try:
            completion: ChatCompletion = await retried(attempt, profile, on_retry=count_retry)
        except openai.APIStatusError as exc:
            raise GenerationFailed(f"generator answered HTTP {exc.status_code}: {exc.message}") from exc
        except openai.APIConnectionError as exc:  # APITimeoutError included
            # aiohttp reports a refused connect as a timeout: tell the two apart.
            if isinstance(exc, openai.APITimeoutError) and not refused(exc):
                raise GenerationFailed(f"generator call timed out (timeout_s={profile.timeout_s})") from exc
            reason = "connection refused" if refused(exc) else str(exc)
            raise GenerationFailed(f"cannot connect to generator at {self._client.base_url}: {reason}") from exc
        except openai.OpenAIError as exc:
            raise GenerationFailed(f"{type(exc).__name__}: {exc}") from exc
        usage = Usage(calls=1, retries=retries)
        if completion.usage is not None:
            usage = usage.model_copy(
                update={
                    "prompt_tokens": completion.usage.prompt_tokens,
                    "completion_tokens": completion.usage.completion_tokens,
                }
            )
        if not completion.choices:
            raise GenerationFailed("generator answered with no choices")
        choice = completion.choices[0]
        if choice.finish_reason == "length":
            raise GenerationFailed(f"generator answer cut at max_tokens={profile.max_tokens}")
        content = choice.message.content or ""
        separate = (choice.message.model_extra or {}).get("reasoning_content")
        if isinstance(separate, str) and separate.strip():
            reasoning, response = separate, split_completion(content)[1] if "</think>" in content else content
        else:
            reasoning, response = split_completion(content)
        reasoning, response = reasoning.strip(), response.strip()
        if not response:
            raise GenerationFailed("generator gave no final response after its <think> block")
        return Draft(reasoning, response, usage)


def _api_key(profile: JudgeProfile) -> str:
    """The key from ``profile.api_key_env``; servers without auth (local vLLM) get a placeholder."""
    if profile.api_key_env is None:
        return "EMPTY"
    if profile.api_key_env not in os.environ:
        raise JudgeUnavailable(
            f"generator {profile.name!r} reads its API key from {profile.api_key_env}, which is not set",
            field="generator",
        )
    return os.environ[profile.api_key_env] or "EMPTY"
