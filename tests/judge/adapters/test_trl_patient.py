"""TRL ``GRPOTrainer`` with ``patient_rollout``: a tiny Qwen3 trained 2 steps on CPU against a live server whose
simulator and judge are the loopback server; the patient's tokens are masked out of the loss."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from judge.adapters.trl import patient_rollout
from tests.judge.adapters.patient_fixtures import patient_server  # noqa: F401 - a fixture
from tests.support.openai_server import OpenAIServer
from tests.support.simulator_cases import CASE_RELATIVE_ZH, CASE_ZH

pytest.importorskip("trl")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def test_grpo_trains_two_steps_with_the_patient_simulator(
    patient_server: str,  # noqa: F811
    openai_server: OpenAIServer,
    tmp_path: Path,
) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from reward_model.tiny import tiny_qwen3_config, train_tiny_tokenizer

    torch.manual_seed(0)
    tokenizer = train_tiny_tokenizer()
    model = AutoModelForCausalLM.from_config(tiny_qwen3_config(len(tokenizer)))
    rollout = patient_rollout(
        patient_server, simulator="patient", cases=[CASE_ZH, CASE_RELATIVE_ZH], max_turns=3, seed=5,
        reward_policy="min",
    )  # fmt: skip
    outputs: list[dict[str, Any]] = []

    def recording_rollout(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        output = rollout(prompts, trainer)
        outputs.append(output)
        return output

    rewards: list[list[float | None]] = []

    async def recording_reward(*args: Any, **kwargs: Any) -> list[float | None]:
        values = await rollout.reward_func(*args, **kwargs)
        rewards.append(values)
        return values

    recording_reward.__name__ = "rj_patient_reward"
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=2, max_steps=2,
        max_completion_length=96, generation_kwargs={"max_new_tokens": 12, "do_sample": True}, use_cpu=True,
        report_to=[], logging_steps=1, save_strategy="no", bf16=False, learning_rate=1e-3, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=[recording_reward], args=args,
        train_dataset=Dataset.from_list(rollout.dataset_rows() * 4), rollout_func=recording_rollout,
    )  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 2 and len(outputs) >= 2

    output = outputs[0]
    assert len(output["completion_ids"]) == len(output["prompt_ids"]) == len(output["env_mask"])
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    checked = 0
    for ids, mask, dialogue in zip(output["completion_ids"], output["env_mask"], output["rj_dialogue"], strict=True):
        assert len(ids) == len(mask) <= 96
        patient_turns = [m["content"] for m in dialogue[1:] if m["role"] == "user"]
        masked = [t for t, m in zip(ids, mask, strict=True) if m == 0]
        if not patient_turns:
            assert not masked
            continue
        # The masked tokens are exactly the patient's turns in the chat template, Chinese text included.
        text = tokenizer.decode(masked)
        assert all(turn in text for turn in patient_turns) and im_start in masked
        policy_text = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m == 1])
        assert not any(turn in policy_text for turn in patient_turns)
        checked += 1
    assert checked, "no episode got a patient turn"
    # TRL counts only the policy's tokens (env_mask) as completion length: the loss sees no simulator token.
    logged = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    expected = sum(sum(m) for m in output["env_mask"]) / len(output["env_mask"])
    assert logged[0]["completions/mean_length"] == pytest.approx(expected)
    # The patient was simulated through /v1/simulate (the loopback simulator saw fenced doctor turns) and every
    # policy turn was judged; episode rewards are the minimum over turns.
    simulated = [c.request for c in openai_server.requests if c.request.is_simulator]
    assert simulated and all(label in ("PATIENT_TURN", "DOCTOR_TURN") for r in simulated for label, _ in r.fenced)
    assert rewards and all(v is None or 0.0 <= v <= 1.0 for v in rewards[0])
    assert any("rj_patient_reward" in key for h in trainer.state.log_history for key in h)
