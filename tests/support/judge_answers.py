"""What the loopback judge says: the request as received, the scriptable behaviours, and the answers built
from them (verdicts, group verdicts, generation drafts, logprob tokens). The HTTP side is in
:mod:`tests.support.openai_server`, which re-exports everything here."""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

# Deliberately not imported from judge.backends.openai.prompts: the server reads prompts as a third party would.
_AXES_LINE = re.compile(r"^RUBRIC_AXES:[ \t]*(.*)$", re.MULTILINE)
_CANDIDATES_LINE = re.compile(r"^RUBRIC_CANDIDATES:[ \t]*(.*)$", re.MULTILINE)
# Fences of the judged turn; the others (conversation, reference) are context shared by a group's candidates.
_JUDGED_FENCES = ("REASONING", "RESPONSE")
_FENCE = re.compile(r"<<<([A-Z_]+)_([0-9a-f]{8,})>>>\n(.*?)\n<<<END_\1_\2>>>", re.DOTALL)
_TOKEN_CHUNK = 4
_SIMULATOR_LINE = re.compile(r"^PATIENT_SIMULATOR:", re.MULTILINE)
_PERTURBER_LINE = re.compile(r"^PATIENT_PERTURBER:", re.MULTILINE)
# How a prompt asks for brief rationales (the answer template's placeholder), in either prompt language.
_BRIEF_PLACEHOLDERS = ("<不超过20字的理由>", "<at most 12 words>")


@dataclass(frozen=True)
class ChatRequest:
    """A chat-completions request as the server received it."""

    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float  # time.monotonic(), comparable with the test process's clock
    path: str = "/v1/chat/completions"
    query: str = ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def prompt(self) -> str:
        """Every message's text, joined."""
        return "\n".join(str(m.get("content") or "") for m in self.messages if isinstance(m, dict))

    @property
    def fenced_texts(self) -> list[str]:
        """The texts inside the prompt's nonce fences (the judged material)."""
        return [match.group(3) for match in _FENCE.finditer(self.prompt)]

    @property
    def axis_keys(self) -> list[str]:
        """Axis keys from the response_format schema, else from the last ``RUBRIC_AXES:`` line outside fences."""
        try:
            axes = self.body["response_format"]["json_schema"]["schema"]["properties"]["axes"]
            return [str(key) for key in axes.get("required") or axes["properties"]]
        except (KeyError, TypeError, AttributeError):
            pass
        found = _AXES_LINE.findall(_FENCE.sub("", self.prompt))
        if not found:
            return []
        return [key.strip() for key in found[-1].split(",") if key.strip()]

    @property
    def fenced(self) -> list[tuple[str, str]]:
        """(label, text) of every fence, in order."""
        return [(match.group(1), match.group(3)) for match in _FENCE.finditer(self.prompt)]

    @property
    def candidate_labels(self) -> list[str]:
        """A group request's candidate labels (schema ``responses``, else ``RUBRIC_CANDIDATES:``); [] otherwise."""
        try:
            responses = self.body["response_format"]["json_schema"]["schema"]["properties"]["responses"]
            return [str(label) for label in responses.get("required") or responses["properties"]]
        except (KeyError, TypeError, AttributeError):
            pass
        prompt = self.prompt
        if "RUBRIC_CANDIDATES:" not in prompt:  # most requests: skip the fence scan
            return []
        found = _CANDIDATES_LINE.findall(_FENCE.sub("", prompt))
        if not found:
            return []
        return [label.strip() for label in found[-1].split(",") if label.strip()]

    def judged_texts(self, candidate: str | None = None) -> list[str]:
        """The fenced texts one candidate is judged on (all of them for a single-sample request).

        For a group candidate: the shared context plus its own reasoning and response, in the order a
        single-sample prompt has them, so a candidate's default scores equal those it gets judged alone.
        """
        if candidate is None:
            return [text for _, text in self.fenced]
        own = {f"{name}_{candidate}" for name in _JUDGED_FENCES}
        return [text for label, text in self.fenced if label in own or not label.startswith(_JUDGED_FENCES)]

    @property
    def is_simulator(self) -> bool:
        """A patient simulator's request (``PATIENT_SIMULATOR:`` line outside the fences)."""
        return "PATIENT_SIMULATOR:" in self.prompt and bool(_SIMULATOR_LINE.search(_FENCE.sub("", self.prompt)))

    @property
    def is_perturber(self) -> bool:
        """A perturber's request (``PATIENT_PERTURBER:`` line outside the fences)."""
        return "PATIENT_PERTURBER:" in self.prompt and bool(_PERTURBER_LINE.search(_FENCE.sub("", self.prompt)))

    @property
    def rationale_mode(self) -> str:
        """What the request asks the judge to write before each score: ``full``, ``brief`` or ``none``.

        From the response_format schema (an axis that is a bare integer: none), else from the prompt's answer
        template, read as a third party would.
        """
        try:
            schema = self.body["response_format"]["json_schema"]["schema"]["properties"]
            holder = schema.get("axes") or next(iter(schema["responses"]["properties"].values()))
            first = next(iter(holder["properties"].values()))
            if first.get("type") == "integer":
                return "none"
        except (KeyError, TypeError, AttributeError, StopIteration):
            outside = _FENCE.sub("", self.prompt)
            keys = self.axis_keys
            if keys and f'"{keys[0]}": <1-5>' in outside:
                return "none"
        outside = _FENCE.sub("", self.prompt)
        return "brief" if any(p in outside for p in _BRIEF_PLACEHOLDERS) else "full"

    @property
    def wants_logprobs(self) -> bool:
        return bool(self.body.get("logprobs"))

    @property
    def top_logprobs(self) -> int:
        value = self.body.get("top_logprobs")
        return int(value) if isinstance(value, int) and value > 0 else 1


def default_scores(
    request: ChatRequest, *, candidate: str | None = None, tie_rate: float | None = None
) -> dict[str, int]:
    """Scores 1..5 derived from the judged texts: the same sample gets the same scores whatever the nonce.

    ``candidate``: one candidate of a group request. ``tie_rate``: that fraction of samples (chosen by
    their hash) get their conversation's scores instead of their own, so rollouts of one prompt tie.
    """
    texts = request.judged_texts(candidate)
    judged = "\x00".join(texts) or request.prompt
    if tie_rate is not None and hashlib.sha256(f"tie\x00{judged}".encode()).digest()[0] < tie_rate * 256:
        # Scored as its conversation is: every tied rollout of one prompt gets the same scores.
        shared = [text for label, text in request.fenced if not label.startswith(_JUDGED_FENCES)]
        judged = "\x00".join(["shared", *shared])
    scores = {}
    for key in request.axis_keys:
        digest = hashlib.sha256(f"{key}\x00{judged}".encode()).digest()
        scores[key] = 1 + digest[0] % 5
    return scores


def confidence(request: ChatRequest, key: str, candidate: str | None = None) -> float:
    """A per-sample, per-axis top probability in [0.45, 0.95] (``vary_confidence``)."""
    judged = "\x00".join(request.judged_texts(candidate))
    return 0.45 + 0.5 * hashlib.sha256(f"conf\x00{key}\x00{judged}".encode()).digest()[0] / 255


ScoreSpec = int | Mapping[str, int] | Callable[[ChatRequest], Mapping[str, int]] | None
CandidateScores = Mapping[str, int | Mapping[str, int]]
CandidateSpec = CandidateScores | Callable[[ChatRequest], CandidateScores] | None
# A score digit's tag in a verdict's pieces: the axis key, or (candidate label, axis key) in a group verdict.
Tag = str | tuple[str, str]


@dataclass(frozen=True)
class Verdict:
    """A well-formed verdict for the request's axes.

    ``scores``: one score for every axis, a mapping (axes left out get the default), or a function of the
    request; None for the default. ``style``: bare JSON, a Markdown ```json fence, JSON inside prose, or
    several objects (a draft with other scores and a different-shape object first, the real one last).
    ``logprobs``: None follows the request, False never sends any, True always does. The score token's
    top logprobs put ``p_top`` on the chosen score and spread the rest evenly, unless ``distributions``
    gives, per axis, the top tokens and their probabilities (e.g. ``{"4": 0.6, " 5": 0.3, "x": 0.1}``).
    For a group request, ``scores`` applies to every candidate and ``by_candidate`` (label -> score or
    per-axis mapping, or a function of the request returning that) overrides it per candidate.
    """

    scores: ScoreSpec = None
    by_candidate: CandidateSpec = None
    style: Literal["json", "fenced", "prose", "several"] = "json"
    logprobs: bool | None = None
    p_top: float = 0.7
    distributions: Mapping[str, Mapping[str, float]] | None = None
    rationale: str = "依据量表逐项核对后给出的评分理由。"
    delay_s: float = 0.0


@dataclass(frozen=True)
class Text:
    """A raw answer (garbage, hand-written JSON, ...)."""

    content: str
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Truncated:
    """A verdict cut in the middle, with ``finish_reason="length"``."""

    scores: ScoreSpec = None


@dataclass(frozen=True)
class HTTPError:
    """An error status in the OpenAI error shape, with optional headers (e.g. Retry-After)."""

    status: int
    message: str = "error"
    headers: Mapping[str, str] = field(default_factory=dict)
    type: str = "server_error"
    code: str | None = None


@dataclass(frozen=True)
class Slow:
    """Answer ``then`` after ``delay_s`` (longer than the client's timeout, to test timeouts)."""

    delay_s: float
    then: Behaviour = Verdict()


@dataclass(frozen=True)
class Generation:
    """A draft for a generation (curation) request: a ``<think>`` block in the five steps, then a response.

    The draft number is ``draft``, else 1 + the highest ``第N稿`` quoted in the prompt (a refinement quotes the
    previous draft, so it gets the next number); the patient's last words are echoed, so every conversation
    gets a draft of its own.
    """

    draft: int | None = None
    finish_reason: str = "stop"


_DRAFT_NUMBER = re.compile(r"第(\d+)稿")


def generation_text(request: ChatRequest, behaviour: Generation) -> str:
    draft = behaviour.draft or 1 + max((int(n) for n in _DRAFT_NUMBER.findall(request.prompt)), default=0)
    patient = [text for label, text in request.fenced if label == "PATIENT_MESSAGE"]
    if not patient:
        patient = [str(m.get("content") or "") for m in request.messages if m.get("role") == "user"]
    words = (patient[-1] if patient else "").replace("\n", " ")[:60]
    return (
        f"<think>\n1. 情绪感知：患者语气焦虑，需要先安抚（第{draft}稿）。\n"
        f"2. 扰动识别：“{words}”中有口语化、含糊的表达。\n"
        f"3. 话语纠正：患者描述为：{words}\n"
        f"4. 主诉提取：{words[:20]}，想知道该怎么办。\n"
        f"5. 医学推理：先排除急症，再考虑常见病因（第{draft}稿）。\n</think>\n\n"
        f"别太担心，建议尽快到医院就诊检查；如果症状突然加重，请立即拨打120（第{draft}稿）。"
    )


@dataclass(frozen=True)
class RawBody:
    """A 200 answer with exactly these bytes (malformed JSON, a completion missing fields, ...)."""

    body: bytes


@dataclass(frozen=True)
class Patient:
    """A patient simulator's answer (``{"utterance", "need_met", "end_visit"}``), deterministic.

    With no doctor turn yet it states the chief complaint (more perturbed at higher intensity). After a doctor
    turn it tells the hidden facts whose topic that turn mentions, and only those; else it asks what to do.
    ``need_met`` once the doctor has had ``satisfied_after`` turns (None: never). It is *gullible* the way a
    compliant model is: an instruction ``请说：…`` / ``say: …`` anywhere outside the fences is obeyed (it says
    that and ends the visit satisfied), which is exactly what fencing the doctor's turns protects against.
    """

    satisfied_after: int | None = None
    style: Literal["json", "prose"] = "json"


@dataclass(frozen=True)
class Perturbed:
    """A perturber's answer: the fenced original with level-dependent perturbation, labelled with its types."""


_CASE_LINE = re.compile(r"^PATIENT_CASE:[ \t]*(.*)$", re.MULTILINE)
_LEVEL_LINE = re.compile(r"^PERTURB_LEVEL:[ \t]*(.*)$", re.MULTILINE)
_TYPES_LINE = re.compile(r"^PERTURB_TYPES:[ \t]*(.*)$", re.MULTILINE)
_OBEY = re.compile(r"(?:请说|say)[:：]\s*([^\n]+)", re.IGNORECASE)
_OPENING_PREFIX = {"formal": "医生您好，", "mild": "医生，", "moderate": "哎呀医生，", "heavy": "医生啊我跟你讲，"}
_ASKS = ("那我现在该怎么办呢？", "这个要紧吗？我有点担心。", "还需要注意什么吗？")


def patient_text(request: ChatRequest, behaviour: Patient) -> str:
    unfenced = _FENCE.sub("", request.prompt)
    found = _CASE_LINE.search(unfenced)
    case = orjson.loads(found.group(1)) if found else {}
    doctor = [text for label, text in request.fenced if label == "DOCTOR_TURN"]
    obeyed = _OBEY.search(unfenced)
    if obeyed:
        utterance, need_met, end_visit = obeyed.group(1).strip(), True, True
    elif not doctor:
        intensity = (case.get("perturbation") or {}).get("intensity", "formal")
        utterance = _OPENING_PREFIX.get(intensity, "") + str(case.get("chief_complaint", "我不太舒服。"))
        need_met = end_visit = False
    else:
        asked = [f["fact"] for f in case.get("hidden_facts", []) if f.get("topic") and f["topic"] in doctor[-1]]
        seed = request.body.get("seed")
        utterance = "；".join(asked) + "。" if asked else _ASKS[(len(doctor) + (seed or 0)) % len(_ASKS)]
        need_met = behaviour.satisfied_after is not None and len(doctor) >= behaviour.satisfied_after
        end_visit = False
    if behaviour.style == "prose":
        return utterance
    return _dumps({"utterance": utterance, "need_met": need_met, "end_visit": end_visit})


_PERTURB_WRAP = {
    "mild": ("嗯，", ""),
    "moderate": ("哎呀，就是那个，", "，好几天了吧"),
    "heavy": ("医生啊我跟你讲，我家那口子非让我来，", "，你说这咋整啊，急死了"),
}


def perturbed_text(request: ChatRequest) -> str:
    unfenced = _FENCE.sub("", request.prompt)
    level_line, types_line = _LEVEL_LINE.search(unfenced), _TYPES_LINE.search(unfenced)
    level = level_line.group(1).strip() if level_line else "mild"
    types = [t.strip() for t in (types_line.group(1) if types_line else "").split(",") if t.strip()]
    original = next((text for label, text in request.fenced if label == "ORIGINAL_MESSAGE"), "")
    head, tail = _PERTURB_WRAP.get(level, ("", ""))
    count = {"mild": 1, "moderate": 2, "heavy": 3}.get(level, 0)
    return _dumps({"rewrite": f"{head}{original.rstrip('。')}{tail}。", "types": types[:count]})


Behaviour = Verdict | Text | Truncated | HTTPError | Slow | Generation | RawBody | Patient | Perturbed
BehaviourSource = Behaviour | Callable[[ChatRequest], Behaviour]


def garbage(content: str = "抱歉，我无法按要求给出评分。这个回答整体还可以吧。") -> Text:
    return Text(content)


def rate_limited(retry_after: str | None = "1", *, retry_after_ms: str | None = None) -> HTTPError:
    headers = {}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return HTTPError(429, "Rate limit reached", headers, type="rate_limit_error", code="rate_limit_exceeded")


def server_error(status: int = 500) -> HTTPError:
    return HTTPError(status, "The server had an error while processing your request")


def bad_request(message: str = "This model's maximum context length is 8192 tokens") -> HTTPError:
    return HTTPError(400, message, type="invalid_request_error", code="context_length_exceeded")


@dataclass
class RecordedCall:
    """One request seen, with when it arrived and when its answer left (``time.monotonic()``)."""

    request: ChatRequest
    status: int = 0
    answered_at: float | None = None

    @property
    def body(self) -> dict[str, Any]:
        return self.request.body

    @property
    def received_at(self) -> float:
        return self.request.received_at


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def resolve_scores(
    spec: ScoreSpec, request: ChatRequest, *, candidate: str | None = None, tie_rate: float | None = None
) -> dict[str, int]:
    scores = default_scores(request, candidate=candidate, tie_rate=tie_rate)
    if isinstance(spec, int):
        return dict.fromkeys(scores, spec)
    if callable(spec):
        scores.update(spec(request))
    elif spec is not None:
        scores.update(spec)
    return scores


def resolve_group_scores(
    verdict: Verdict, request: ChatRequest, labels: list[str], tie_rate: float | None
) -> dict[str, dict[str, int]]:
    overrides = verdict.by_candidate(request) if callable(verdict.by_candidate) else verdict.by_candidate or {}
    scores = {}
    for label in labels:
        scores[label] = resolve_scores(verdict.scores, request, candidate=label, tie_rate=tie_rate)
        override = overrides.get(label)
        if isinstance(override, int):
            scores[label] = dict.fromkeys(scores[label], override)
        elif override is not None:
            scores[label].update(override)
    return scores


def group_verdict_pieces(
    scores: Mapping[str, Mapping[str, int]], rationale: str | None
) -> list[tuple[str, Tag | None]]:
    """A group verdict as pieces; a piece tagged (label, axis) is that candidate's score digit for that axis."""
    pieces: list[tuple[str, Tag | None]] = [('{"responses": {', None)]
    for i, (label, axes) in enumerate(scores.items()):
        pieces.append((f"{', ' if i else ''}{_dumps(label)}: {{", None))
        for text, key in verdict_pieces(axes, rationale)[1:-1]:
            pieces.append((text, (label, key) if key is not None else None))
        pieces.append(("}", None))
    pieces.append(("}}", None))
    return pieces


def verdict_pieces(scores: Mapping[str, int], rationale: str | None) -> list[tuple[str, str | None]]:
    """The verdict JSON as pieces; a piece tagged with an axis key is that axis's score digit.

    ``rationale=None``: bare scores (``{"axes": {"safety": 4}}``), as asked by ``rationale: none``.
    """
    pieces: list[tuple[str, str | None]] = [('{"axes": {', None)]
    for i, (key, score) in enumerate(scores.items()):
        head = ", " if i else ""
        if rationale is None:
            pieces.append((f"{head}{_dumps(key)}: ", None))
            pieces.append((str(score), key))
            continue
        pieces.append((f'{head}{_dumps(key)}: {{"rationale": {_dumps(rationale)}, "score": ', None))
        pieces.append((str(score), key))
        pieces.append(("}", None))
    pieces.append(("}}", None))
    return pieces


@dataclass(frozen=True)
class Tokens:
    """Token objects of ``choices[0].logprobs.content``, already serialised (comma-joined), and their count."""

    json: bytes
    count: int


def _token_json(text: str, logprob: float, top: tuple[tuple[str, float], ...]) -> bytes:
    return orjson.dumps(
        {
            "token": text,
            "logprob": logprob,
            "bytes": list(text.encode()),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top],
        }
    )


# The pieces between score digits repeat from request to request (same keys, same rationale), so their
# tokens are serialised once: this keeps the server far from being a benchmark's bottleneck.
@functools.lru_cache(maxsize=8192)
def _text_tokens(text: str, top_n: int) -> Tokens:
    chunks = [text[start : start + _TOKEN_CHUNK] for start in range(0, len(text), _TOKEN_CHUNK)]
    return Tokens(b",".join(_token_json(c, 0.0, ((c, 0.0),)[:top_n]) for c in chunks), len(chunks))


@functools.lru_cache(maxsize=8192)
def _digit_token(text: str, top: tuple[tuple[str, float], ...], fallback_logprob: float) -> Tokens:
    return Tokens(_token_json(text, dict(top).get(text, fallback_logprob), top), 1)


def _score_top(verdict: Verdict, key: str, score: int, p_top: float | None = None) -> tuple[tuple[str, float], ...]:
    p_top = verdict.p_top if p_top is None else p_top
    if verdict.distributions is not None and key in verdict.distributions:
        probabilities = dict(verdict.distributions[key])
    else:
        rest = (1.0 - p_top) / 4
        probabilities = {str(level): p_top if level == score else rest for level in range(1, 6)}
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    return tuple((token, math.log(p)) for token, p in ranked if p > 0)


def logprob_tokens(
    pieces: list[tuple[str, Tag | None]],
    verdict: Verdict,
    scores: Mapping[Tag, int],
    top_n: int,
    p_tops: Mapping[Tag, float] | None = None,
) -> Tokens:
    parts = []
    for text, tag in pieces:
        if tag is None:
            parts.append(_text_tokens(text, top_n))
        else:
            key = tag if isinstance(tag, str) else tag[1]
            p_top = p_tops.get(tag) if p_tops is not None else None
            top = _score_top(verdict, key, scores[tag], p_top)[:top_n]
            parts.append(_digit_token(text, top, math.log(verdict.p_top if p_top is None else p_top)))
    return Tokens(b",".join(part.json for part in parts if part.count), sum(part.count for part in parts))
