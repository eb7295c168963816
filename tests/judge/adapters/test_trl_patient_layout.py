"""``patient_rollout`` against a stand-in trainer (fast): token layout, logprobs, budgets, end reasons, rewards.

The stand-in has the two trainer methods the rollout uses (``_tokenize_prompts``, ``_generate_single_turn``)
and returns logprobs as TRL's vLLM path does; the full ``GRPOTrainer`` run is in ``test_trl_patient.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from judge.adapters.trl import patient_rollout
from tests.judge.adapters.patient_fixtures import patient_server  # noqa: F401 - a fixture
from tests.support.openai_server import OpenAIServer, Patient, Text, Verdict
from tests.support.simulator_cases import CASE_ZH


class StandInTrainer:
    def __init__(self, tokenizer: Any, max_completion_length: int) -> None:
        self.processing_class = self._tokenizer = tokenizer
        self.max_completion_length = max_completion_length
        self.chat_template = None
        self.chat_template_kwargs: dict[str, Any] = {}
        self.contexts: list[list[int]] = []

    def _tokenize_prompts(self, prompts: list[Any]) -> tuple[list[list[int]], None, dict[str, Any]]:
        ids = [
            list(self._tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False))
            for p in prompts
        ]
        return ids, None, {}

    def _generate_single_turn(self, prompt_ids: list[list[int]], *_: Any) -> tuple[list[list[int]], list[list[float]]]:
        self.contexts += prompt_ids
        reply = "您好，请问您平时用药情况怎么样？"
        ids = self._tokenizer.encode(reply, add_special_tokens=False) + [self._tokenizer.eos_token_id]
        return [ids for _ in prompt_ids], [[-0.25] * len(ids) for _ in prompt_ids]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from reward_model.tiny import train_tiny_tokenizer

    return train_tiny_tokenizer()


def test_layout_logprobs_and_rewards(
    patient_server: str,  # noqa: F811
    openai_server: OpenAIServer,
    tokenizer: Any,
) -> None:
    import asyncio

    rollout = patient_rollout(patient_server, simulator="patient", cases=[CASE_ZH], max_turns=2, reward_policy="last")
    trainer = StandInTrainer(tokenizer, max_completion_length=4096)
    out = rollout([r["prompt"] for r in rollout.dataset_rows()], trainer)
    (ids,), (mask,), (logprobs,) = out["completion_ids"], out["env_mask"], out["logprobs"]
    assert out["rj_end_reason"] == ["max_turns"]
    assert len(ids) == len(mask) == len(logprobs)
    # policy turn (1s, its logprobs), patient turn (0s, logprob 0.0), policy turn (1s).
    runs = [m for i, m in enumerate(mask) if i == 0 or mask[i - 1] != m]
    assert runs == [1, 0, 1]
    assert {lp for lp, m in zip(logprobs, mask, strict=True) if m == 1} == {-0.25}
    assert {lp for lp, m in zip(logprobs, mask, strict=True) if m == 0} == {0.0}
    patient = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
    assert "我一直在吃阿司匹林，每天一片。" in patient and patient.rstrip().endswith("assistant")
    # The second generation continued the same tokens.
    assert trainer.contexts[1] == out["prompt_ids"][0] + ids[: len(trainer.contexts[1]) - len(out["prompt_ids"][0])]
    # Rewards: each policy turn judged in context, the episode gets the last turn's reward ("last").
    dialogue = out["rj_dialogue"]
    rewards = asyncio.run(rollout.reward_func(prompts=[None], completions=[None], rj_dialogue=dialogue))
    judged = [c.request for c in openai_server.requests if c.request.axis_keys]
    assert len(judged) == 2 and rewards[0] is not None and 0.0 <= rewards[0] <= 1.0
    # An unscored turn: no episode reward is invented.
    openai_server.default = lambda r: Text("无法评分") if r.axis_keys else Verdict()
    changed = [[*dialogue[0][:-1], {"role": "assistant", "content": "另一个回答（未评分）"}]]
    assert asyncio.run(rollout.reward_func(prompts=[None], completions=[None], rj_dialogue=changed)) == [None]


def test_the_budget_and_the_patient_end_the_episode(
    patient_server: str,  # noqa: F811
    openai_server: OpenAIServer,
    tokenizer: Any,
) -> None:
    rollout = patient_rollout(patient_server, simulator="patient", cases=[CASE_ZH], max_turns=5)
    prompts = [r["prompt"] for r in rollout.dataset_rows()]
    # The patient's need is met after the first reply: one policy turn, nothing masked.
    openai_server.default = lambda r: Patient(satisfied_after=1) if r.is_simulator else Verdict()
    out = rollout(prompts, StandInTrainer(tokenizer, max_completion_length=4096))
    assert out["rj_end_reason"] == ["need_met"] and 0 not in out["env_mask"][0]
    # A budget smaller than one reply: cut at the budget, no simulator call.
    openai_server.reset()
    out = rollout(prompts, StandInTrainer(tokenizer, max_completion_length=5))
    assert out["rj_end_reason"] == ["length"] and len(out["completion_ids"][0]) == 5
    assert not any(c.request.is_simulator for c in openai_server.requests)
    with pytest.raises(KeyError, match="no case has the opening"):
        rollout([[{"role": "user", "content": "不在病例里的开场白"}]], StandInTrainer(tokenizer, 64))
