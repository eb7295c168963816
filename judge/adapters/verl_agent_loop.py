"""A verl (0.9+) agent loop with the patient simulator as the other party, registered as ``rubric_judge_patient``.

The policy's turns come from verl's own generation server (``server_manager.generate``); the patient's turns
come from ``POST /v1/simulate`` and enter the token stream through verl's Continuous Token builder with
``response_mask`` 0, so only the policy's tokens carry loss. The loop ends when the simulator says the visit
is over (need met, patient leaves, ``max_turns``) or the response budget (``rollout.response_length``) is spent.
Every policy turn is then judged in its context through ``POST /v1/rewards`` and the episode reward (``mean |
min | last | discounted`` over the turns) is returned as ``reward_score``; an episode with an unscored turn
returns none, and verl's reward manager scores it instead.

Configure it in an agent-loop file (``actor_rollout_ref.rollout.agent.agent_loop_config_path``)::

    - name: rubric_judge_patient
      _target_: judge.adapters.verl_agent_loop.RubricJudgePatientAgentLoop
      simulator: deepseek-patient     # a simulators: profile of the rubric-judge server
      max_turns: 3
      reward_policy: mean

and give each dataset row ``agent_name: rubric_judge_patient`` and the case in ``extra_info.case`` (a
``POST /v1/simulate`` case; its ``opening`` is the prompt). Unset options come from ``RJ_REWARD_URL``,
``RJ_API_KEY``, ``RJ_SIMULATOR``, ``RJ_SIMULATOR_MAX_TURNS``.
"""

from __future__ import annotations

import os
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register

from judge.adapters.client import ClientConfig, RewardClient
from judge.simulator.episode_rewards import REWARD_POLICIES, RewardPolicy, episode_reward

AGENT_NAME = "rubric_judge_patient"


@register(AGENT_NAME)  # type: ignore[misc,unused-ignore]
class RubricJudgePatientAgentLoop(AgentLoopBase):  # type: ignore[misc,unused-ignore]
    """Policy -> simulated patient -> policy … until the visit ends; the episode's reward from the judge."""

    def __init__(
        self,
        *args: Any,
        simulator: str | None = None,
        base_url: str | None = None,
        max_turns: int | None = None,
        reward_policy: str = "mean",
        gamma: float = 0.9,
        judge: str | None = None,
        rubric: str | None = None,
        score_turns: bool = True,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.response_length = int(self.rollout_config.response_length)
        self.simulator = simulator or os.environ.get("RJ_SIMULATOR") or ""
        if not self.simulator:
            raise ValueError("rubric_judge_patient needs a simulator profile (simulator: … or RJ_SIMULATOR)")
        self.max_turns = int(max_turns or os.environ.get("RJ_SIMULATOR_MAX_TURNS", "3"))
        if reward_policy not in REWARD_POLICIES:
            raise ValueError(f"reward_policy must be one of {REWARD_POLICIES}, not {reward_policy!r}")
        self.reward_policy: RewardPolicy = next(p for p in REWARD_POLICIES if p == reward_policy)
        self.gamma = gamma
        self.score_turns = score_turns
        self.seed = seed
        self.client_config = ClientConfig.from_env(base_url=base_url)
        self.reward_request: dict[str, Any] = {"on_failure": "null"}
        if judge is not None:
            self.reward_request["judge"] = judge
        if rubric is not None:
            self.reward_request["rubric"] = rubric

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        messages: list[dict[str, Any]] = [dict(m) for m in kwargs["raw_prompt"]]
        case = _case(kwargs)
        prompt_ids: list[int] = await self.ct_build_initial_tokens(messages)
        response_mask: list[int] = []
        # As verl's tool agent loop keeps them: a list, filled once the server returns logprobs.
        response_logprobs: list[float] = []
        request_id = uuid4().hex
        tokenizer: Any = self.tokenizer
        client = RewardClient(self.client_config)
        reason = "max_turns"
        policy_turns = patient_turns = 0
        try:
            while True:
                output = await self.server_manager.generate(
                    request_id=request_id, prompt_ids=prompt_ids, sampling_params=sampling_params
                )
                merged, response_mask, merged_logprobs = await self.ct_merge_assistant_token(
                    prompt_ids,
                    output.token_ids,
                    response_mask,
                    response_logprobs if (response_logprobs or output.log_probs) else None,
                    assistant_logprobs=output.log_probs or None,
                )
                prompt_ids = merged.token_ids
                if merged_logprobs is not None:
                    response_logprobs = merged_logprobs
                policy_turns += 1
                reply = tokenizer.decode(output.token_ids, skip_special_tokens=True)
                messages.append({"role": "assistant", "content": reply})
                if len(response_mask) >= self.response_length:
                    reason = "length"
                    break
                answer = await client.post(
                    "/v1/simulate",
                    {"simulator": self.simulator, "case": case, "messages": _plain(messages),
                     "max_turns": self.max_turns, "seed": self.seed},
                )  # fmt: skip
                if answer["done"] or answer.get("message") is None:
                    reason = str(answer["reason"])
                    break
                previous = list(messages)
                messages.append({"role": "user", "content": str(answer["message"]["content"])})
                merged, mask, logprobs = await self.ct_merge_context_msg(
                    previous, messages, prompt_ids, response_mask, response_logprobs or None
                )
                if len(mask) >= self.response_length:
                    reason = "length"
                    break
                prompt_ids, response_mask = merged.token_ids, mask
                if response_logprobs:
                    response_logprobs = logprobs or []
                patient_turns += 1
            reward, turn_rewards = await self._score(client, messages) if self.score_turns else (None, [])
        finally:
            await client.aclose()
        response_ids = prompt_ids[-len(response_mask) :] if response_mask else []
        prompt_part = prompt_ids[: len(prompt_ids) - len(response_mask)]
        length = self.response_length
        return AgentLoopOutput(
            prompt_ids=prompt_part,
            response_ids=response_ids[:length],
            response_mask=response_mask[:length],
            response_logprobs=response_logprobs[:length] if response_logprobs else None,
            reward_score=reward,
            num_turns=1 + policy_turns + patient_turns,
            metrics={},
            extra_fields={
                "rj_dialogue": _plain(messages),
                "rj_end_reason": reason,
                "rj_turn_rewards": turn_rewards,
                "turn_scores": [r for r in turn_rewards if r is not None],
                "tool_rewards": [],
            },
        )

    async def _score(
        self, client: RewardClient, messages: list[dict[str, str]]
    ) -> tuple[float | None, list[float | None]]:
        """Every policy turn judged in its context; the episode reward under ``reward_policy``."""
        plain = _plain(messages)
        items = [
            {"id": str(i), "messages": plain[:i], "completion": m["content"]}
            for i, m in enumerate(plain)
            if m["role"] == "assistant" and i > 0
        ]
        answer = await client.post("/v1/rewards", {**self.reward_request, "items": items})
        by_index = {item.get("index"): item for item in answer.get("items", [])}
        rewards: list[float | None] = [(by_index.get(i) or {}).get("reward") for i in range(len(items))]
        return episode_reward(rewards, self.reward_policy, self.gamma), rewards


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]


def _case(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The patient case of a dataset row: ``extra_info.case``, else a top-level ``case`` field."""
    extra = kwargs.get("extra_info") or {}
    case = extra.get("case") if isinstance(extra, dict) else None
    case = case if case is not None else kwargs.get("case")
    if not isinstance(case, dict):
        raise ValueError("rubric_judge_patient needs the patient case in the row's extra_info.case")
    return {k: v for k, v in case.items() if k != "max_turns"}
