"""``rubric-judge judges check NAME``: one real scoring call through the judge's own backend, and what it tells.

It reports how long the call took, whether the answer parsed as structured output (every axis ``ok``), and
whether logprobs came back (expected scores), so that a misconfigured judge is found before a run, not in one.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from judge.backends.factory import build_backend
from judge.profiles import JudgeProfile
from judge.samples import Message, SampleIn, normalise
from judge.verdicts import AxisStatus
from rubrics.schema import Rubric

# A short Chinese consultation (the primary data language) with a CoT in the five expected steps.
CHECK_SAMPLE = SampleIn(
    id="judges-check",
    messages=[Message(role="user", content="我妈这两天胸口闷得慌，上楼就喘，她有高血压，要紧不？")],
    reasoning=(
        "1. 情绪感知：家属担心。2. 扰动识别：“闷得慌”指胸闷。3. 话语校正：老年高血压患者两天来胸闷、活动后气促。"
        "4. 主诉提取：胸闷伴活动后气促两天。5. 医学推理：需警惕心绞痛或心衰，应尽快就医。"
    ),
    response="您别太着急。胸闷加上楼就喘，对有高血压的老人要重视，建议今天就去医院心内科；如果胸痛加重、出冷汗，请立即拨打120。",
)


@dataclass
class CheckReport:
    judge: str
    rubric: str
    ok: bool
    latency_ms: float
    axes_ok: int
    axes: int
    structured_output: bool
    logprobs: str  # "returned" | "not returned" | "not asked"
    retries: int
    error: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def check_judge(profile: JudgeProfile, rubric: Rubric) -> CheckReport:
    """Score :data:`CHECK_SAMPLE` once (no cache, no store, no retries beyond one) and describe what came back."""
    quick = profile.model_copy(update={"max_retries": min(profile.max_retries, 1)})
    backend = build_backend(quick)
    started = time.perf_counter()
    try:
        outcome = await backend.score(normalise(CHECK_SAMPLE), rubric)
    finally:
        await backend.aclose()
    latency_ms = (time.perf_counter() - started) * 1000
    axes = list(outcome.axes.values())
    ok_axes = [a for a in axes if a.status == AxisStatus.ok]
    errors = [a.error for a in axes if a.error] + ([outcome.error] if outcome.error else [])
    parse_failed = any(a.status == AxisStatus.parse_error for a in axes)
    if not profile.logprobs:
        logprobs = "not asked"
    elif any(a.score_method == "logprobs" for a in ok_axes):
        logprobs = "returned"
    else:
        logprobs = "not returned"
    return CheckReport(
        judge=profile.name,
        rubric=rubric.ref,
        ok=len(ok_axes) == len(axes) and bool(axes),
        latency_ms=round(latency_ms, 1),
        axes_ok=len(ok_axes),
        axes=len(axes),
        structured_output=bool(ok_axes) and not parse_failed,
        logprobs=logprobs,
        retries=outcome.usage.retries,
        error=errors[0] if errors else None,
    )
