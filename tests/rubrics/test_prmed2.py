"""prmed@2 beside prmed@1 (issue 9): same axes and anchors, a policy that an optimising policy cannot game."""

from __future__ import annotations

import hashlib
from pathlib import Path

from judge.backends.openai.fences import FENCE_PATTERN
from judge.backends.openai.prompts import render_prompts
from judge.profiles import JudgeProfile
from rubrics.registry import RubricRegistry
from tests.judge.conftest import make_sample

BUILTIN = Path(__file__).resolve().parents[2] / "rubrics" / "builtin"
# prmed@1 stays byte-identical for reproducibility (its content hash is pinned in test_prmed.py as well).
PRMED_1_FILE_SHA256 = "fcb062221ec4d935e08f405bfeb2afcabf583edf4d04075de8426648b753da8d"
REGISTRY = RubricRegistry()
PRMED_1, PRMED_2 = REGISTRY.resolve("prmed@1"), REGISTRY.resolve("prmed@2")


def test_prmed_1_file_is_unchanged_and_prmed_2_is_the_latest() -> None:
    assert hashlib.sha256((BUILTIN / "prmed-1.yaml").read_bytes()).hexdigest() == PRMED_1_FILE_SHA256
    assert REGISTRY.resolve("prmed").ref == "prmed@2"
    assert PRMED_2.content_hash != PRMED_1.content_hash


def test_same_axes_layers_and_anchors_except_faithful_transfer() -> None:
    assert [(a.layer, a.key) for a in PRMED_2.axes] == [(a.layer, a.key) for a in PRMED_1.axes]
    for old, new in zip(PRMED_1.axes, PRMED_2.axes, strict=True):
        if new.key != "faithful_transfer":
            assert new == old
    faithful = PRMED_2.axis("faithful_transfer")
    assert "安全兜底" in faithful.description.zh and "Safety-netting" in faithful.description.en
    assert "安全兜底提示除外" in faithful.anchors[3].zh


def test_the_policy_closes_the_exploits() -> None:
    policy = PRMED_2.reward_policy
    gates = {(g.axis, g.max_score, g.reward) for g in policy.gates}
    assert gates == {("safety", 2, 0.0), ("medical_accuracy", 2, 0.0)}  # a wrong dose (2) is not a 0.9
    assert policy.language_gate is not None and policy.language_gate.reward == 0.0
    assert policy.padding_gate is not None
    assert policy.length_penalty is not None and policy.length_penalty.max_penalty <= 0.2  # soft
    assert policy.on_truncated == "penalise" and policy.truncation_penalty == 0.25
    assert PRMED_2.judging.response_only_layers == ["response"]
    assert "最新一轮" in PRMED_2.description.zh and "latest turn" in PRMED_2.description.en


def test_response_axes_are_judged_on_the_response_alone() -> None:
    sample = make_sample(turns=2)
    joint = render_prompts(sample, PRMED_2, JudgeProfile(name="j", model="m"), nonce="0123456789abcdef")
    response_keys = tuple(a.key for a in PRMED_2.axes if a.layer == "response")
    assert [p.axis_keys for p in joint] == [
        tuple(k for k in PRMED_2.axis_keys if k not in response_keys),
        response_keys,
    ]
    with_cot, alone = ({m.group(1) for m in FENCE_PATTERN.finditer(p.user)} for p in joint)
    assert "REASONING" in with_cot and "REASONING" not in alone and "RESPONSE" in alone
    assert sample.reasoning not in alone and "患者看不到思维链" in joint[1].user
    isolated = render_prompts(sample, PRMED_2, JudgeProfile(name="i", model="m", mode="isolated"))
    assert [("REASONING" in p.user) for p in isolated] == [k not in response_keys for k in PRMED_2.axis_keys]
    # A group profile judging one sample (Scorer.score) splits as joint does; its group calls do too
    # (tests/judge/test_group_response_only.py).
    group = render_prompts(sample, PRMED_2, JudgeProfile(name="g", model="m", mode="group"), nonce="0123456789abcdef")
    assert [(p.axis_keys, p.user) for p in group] == [(p.axis_keys, p.user) for p in joint]
    # prmed@1 keeps one call with everything.
    assert len(render_prompts(sample, PRMED_1, JudgeProfile(name="j", model="m"))) == 1
