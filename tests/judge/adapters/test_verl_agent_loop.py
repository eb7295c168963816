"""The verl agent loop ``rubric_judge_patient``, built by verl's own registry and hydra, driven by a scripted
generation server, with a live rubric-judge server simulating the patient and judging each turn."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.judge.adapters.patient_fixtures import patient_server  # noqa: F401 - a fixture
from tests.support.openai_server import OpenAIServer
from tests.support.simulator_cases import CASE_ZH

agent_loop_module = pytest.importorskip("verl.experimental.agent_loop.agent_loop")


class ScriptedGenerationServer:
    """Stands in for verl's LLM server client: the same ``generate`` call, a scripted Chinese reply each turn."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.prompts: list[list[int]] = []

    async def generate(
        self, *, request_id: str, prompt_ids: list[int], sampling_params: dict[str, Any], **_: Any
    ) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        self.prompts.append(list(prompt_ids))
        n = len(self.prompts)
        text = f"<think>第{n}轮：先问清用药。</think>您好，请问您平时用药情况怎么样？（第{n}轮）"
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), stop_reason="completed")


async def test_the_agent_loop_plays_the_policy_against_the_simulated_patient(
    patient_server: str,  # noqa: F811
    openai_server: OpenAIServer,
) -> None:
    import hydra
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    import judge.adapters.verl_agent_loop  # noqa: F401 - registers rubric_judge_patient
    from reward_model.tiny import train_tiny_tokenizer

    os.environ.pop("RJ_SIMULATOR", None)
    tokenizer = train_tiny_tokenizer()
    config = OmegaConf.create(
        {"actor_rollout_ref": {"rollout": {"prompt_length": 512, "response_length": 2048}}, "data": {}}
    )
    registered = agent_loop_module._agent_loop_registry["rubric_judge_patient"]
    assert registered["_target_"] == "judge.adapters.verl_agent_loop.RubricJudgePatientAgentLoop"
    server = ScriptedGenerationServer(tokenizer)
    loop = hydra.utils.instantiate(
        config={**registered, "simulator": "patient", "base_url": patient_server, "max_turns": 3,
                "reward_policy": "min", "seed": 2},
        trainer_config=agent_loop_module.DictConfigWrap(config=config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        dataset_cls=RLHFDataset,
        data_config=agent_loop_module.DictConfigWrap(config.data),
        hf_model_type="qwen3",
        tools=agent_loop_module.ToolListWrap([]),
    )  # fmt: skip
    prompt = [{"role": "user", "content": CASE_ZH["opening"]}]
    output = await loop.run({"temperature": 1.0}, raw_prompt=prompt, extra_info={"case": CASE_ZH})

    # Three policy turns (max_turns), two simulated patient turns in between.
    assert len(server.prompts) == 3 and output.extra_fields["rj_end_reason"] == "max_turns"
    dialogue = output.extra_fields["rj_dialogue"]
    assert [m["role"] for m in dialogue] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    # The doctor asked about medication: the simulated patient told that hidden fact.
    assert dialogue[2]["content"] == "我一直在吃阿司匹林，每天一片。"
    # Each generation continues the same token stream: prompt, then the response so far.
    assert server.prompts[1][: len(server.prompts[0])] == server.prompts[0]
    assert (
        server.prompts[2] == output.prompt_ids + output.response_ids[: len(server.prompts[2]) - len(output.prompt_ids)]
    )
    # Only the policy's tokens carry loss: the patient's turns are masked, and hold the patient's words.
    mask, ids = output.response_mask, output.response_ids
    assert len(mask) == len(ids) and 0 in mask and mask[0] == 1
    masked = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
    assert "我一直在吃阿司匹林" in masked and "用药情况" not in masked
    policy = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m == 1])
    assert "（第3轮）" in policy and "阿司匹林" not in policy
    assert output.response_logprobs is not None and len(output.response_logprobs) == len(ids)
    assert {lp for lp, m in zip(output.response_logprobs, mask, strict=True) if m == 1} == {-0.5}
    # Every policy turn judged in context; the episode reward is their minimum.
    turn_rewards = output.extra_fields["rj_turn_rewards"]
    assert len(turn_rewards) == 3 and all(r is not None for r in turn_rewards)
    assert output.reward_score == min(turn_rewards)
    assert sum(1 for c in openai_server.requests if c.request.axis_keys) == 3
    assert output.num_turns == 6
