"""Multi-turn GRPO with the patient simulator in TRL (1.16+): a ``rollout_func`` and its reward function.

    from judge.adapters.trl import patient_rollout

    rollout = patient_rollout("http://127.0.0.1:8000", simulator="deepseek-patient", cases=cases, max_turns=3)
    trainer = GRPOTrainer(model=..., rollout_func=rollout, reward_funcs=[rollout.reward_func], train_dataset=...)

The dataset's prompts are the cases' openings (``rollout.dataset_rows()`` builds them). For each prompt the
rollout generates the policy's turn with the trainer's own generation (vLLM or transformers, whichever the
trainer is set up with), asks ``POST /v1/simulate`` for the patient's reply, appends it in the chat template and
generates again, until the simulator says the visit is over, ``max_turns`` is reached or the completion budget
(``max_completion_length``) is spent. It returns ``prompt_ids``, ``completion_ids`` and ``logprobs`` (None when
the trainer's generation gives none, as its own transformers path does) and ``env_mask``: 1 on the policy's
tokens, 0 on the patient's turns and their template tokens, so only the policy's tokens carry loss.

``rollout.reward_func`` scores every policy turn in its context through ``POST /v1/rewards`` and aggregates an
episode's turn rewards with ``reward_policy`` (mean | min | last | discounted). An episode with an unscored turn
gets None (TRL leaves it out), never an invented reward.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from judge.adapters.client import ClientConfig, RewardClient, shared_client
from judge.simulator.episode_rewards import RewardPolicy, episode_reward

RewardFunc = Callable[..., Awaitable[list[float | None]]]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def opening_of(prompt: Any) -> str:
    """The patient's words a prompt ends with: its last user message, or the prompt itself if it is text."""
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return _text(users[-1].get("content")).strip() if users else ""
    return str(prompt).strip()


@dataclass
class _Episode:
    case: dict[str, Any]
    messages: list[dict[str, str]]
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] | None = field(default_factory=list)
    done: bool = False
    reason: str = "continue"

    def add(self, ids: Sequence[int], *, policy: bool, logprobs: Sequence[float] | None = None) -> None:
        self.completion_ids += list(ids)
        self.env_mask += [1 if policy else 0] * len(ids)
        if self.logprobs is not None:
            if policy and logprobs is None:
                self.logprobs = None
            else:
                self.logprobs += list(logprobs) if policy and logprobs is not None else [0.0] * len(ids)


class PatientRollout:
    """TRL's ``rollout_func`` (call it with the per-process prompts and the trainer) plus ``reward_func``."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        simulator: str,
        cases: Sequence[Mapping[str, Any]],
        max_turns: int,
        seed: int | None,
        reward_request: dict[str, Any],
        reward_policy: RewardPolicy,
        gamma: float,
    ) -> None:
        self.config = config
        self.simulator = simulator
        self.max_turns = max_turns
        self.seed = seed
        self.reward_policy = reward_policy
        self.gamma = gamma
        self._reward_request = reward_request
        self._cases: dict[str, dict[str, Any]] = {}
        for case in cases:
            opening = str(case.get("opening") or "").strip()
            if not opening:
                raise ValueError(f"case {case.get('id')!r} has no opening: the prompt is the patient's opening")
            self._cases[opening] = dict(case)
        self.reward_func = self._make_reward_func()

    def dataset_rows(self) -> list[dict[str, Any]]:
        """One conversational prompt per case (its opening), for ``datasets.Dataset.from_list``."""
        return [{"prompt": [{"role": "user", "content": opening}]} for opening in self._cases]

    def case_for(self, prompt: Any) -> dict[str, Any]:
        opening = opening_of(prompt)
        try:
            return self._cases[opening]
        except KeyError:
            raise KeyError(f"no case has the opening {opening[:80]!r}; build prompts with dataset_rows()") from None

    # -- the rollout -------------------------------------------------------------------------------------

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        tokenizer = trainer.processing_class
        prompt_ids, _, _ = trainer._tokenize_prompts(prompts)
        episodes = [
            _Episode(
                case=self.case_for(prompt),
                messages=[{"role": str(m["role"]), "content": _text(m["content"])} for m in prompt]
                if isinstance(prompt, list)
                else [{"role": "user", "content": str(prompt)}],
                prompt_ids=list(ids),
            )
            for prompt, ids in zip(prompts, prompt_ids, strict=True)
        ]
        budget = int(trainer.max_completion_length)
        for _ in range(self.max_turns):
            active = [e for e in episodes if not e.done]
            if not active:
                break
            # The trainer's own generation (vLLM or transformers), one completion per running episode.
            new_ids, new_logprobs = trainer._generate_single_turn(
                [e.prompt_ids + e.completion_ids for e in active], None, {}, 1
            )
            for index, (episode, ids) in enumerate(zip(active, new_ids, strict=True)):
                room = budget - len(episode.completion_ids)
                kept = list(ids)[:room]
                logprobs = list(new_logprobs[index])[:room] if new_logprobs is not None else None
                episode.add(kept, policy=True, logprobs=logprobs)
                text = tokenizer.decode(kept, skip_special_tokens=True)
                episode.messages.append({"role": "assistant", "content": text})
                if len(episode.completion_ids) >= budget:
                    episode.done, episode.reason = True, "length"
            asking = [e for e in active if not e.done]
            if not asking:
                break
            answers = asyncio.run(self._simulate(asking))
            for episode, answer in zip(asking, answers, strict=True):
                if answer["done"] or answer.get("message") is None:
                    episode.done, episode.reason = True, str(answer["reason"])
                    continue
                utterance = str(answer["message"]["content"])
                suffix = self._patient_turn_ids(trainer, utterance)
                if len(episode.completion_ids) + len(suffix) >= budget:
                    episode.done, episode.reason = True, "length"
                    continue
                episode.add(suffix, policy=False)
                episode.messages.append({"role": "user", "content": utterance})
        for episode in episodes:
            if not episode.done:
                episode.done, episode.reason = True, "max_turns"
        logprobs = [e.logprobs for e in episodes]
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": None if any(lp is None for lp in logprobs) else logprobs,
            "env_mask": [e.env_mask for e in episodes],
            "rj_dialogue": [e.messages for e in episodes],
            "rj_end_reason": [e.reason for e in episodes],
        }

    async def _simulate(self, episodes: list[_Episode]) -> list[dict[str, Any]]:
        client = RewardClient(self.config)
        try:

            async def one(episode: _Episode) -> dict[str, Any]:
                body = {
                    "simulator": self.simulator,
                    "case": {k: v for k, v in episode.case.items() if k != "max_turns"},
                    "messages": episode.messages,
                    "max_turns": self.max_turns,
                    "seed": self.seed,
                }
                answer: dict[str, Any] = await client.post("/v1/simulate", body)
                return answer

            return list(await asyncio.gather(*(one(e) for e in episodes)))
        finally:
            await client.aclose()

    @staticmethod
    def _patient_turn_ids(trainer: Any, utterance: str) -> list[int]:
        """The tokens of a user turn and the next assistant header, as the chat template writes them.

        Rendered after a dummy exchange and cut at its last end-of-turn token, as TRL does for tool results,
        so that the turn's tokens do not depend on how the template re-renders earlier assistant turns.
        """
        tokenizer = trainer.processing_class
        kwargs: dict[str, Any] = {
            "tokenize": True,
            "return_dict": False,
            "chat_template": getattr(trainer, "chat_template", None),
            **(getattr(trainer, "chat_template_kwargs", None) or {}),
        }
        dummy = [{"role": "user", "content": "dummy"}, {"role": "assistant", "content": "dummy"}]
        prefix = list(tokenizer.apply_chat_template(dummy, add_generation_prompt=False, **kwargs))
        full = list(
            tokenizer.apply_chat_template(
                [*dummy, {"role": "user", "content": utterance}], add_generation_prompt=True, **kwargs
            )
        )
        eos = getattr(trainer, "_tokenizer", tokenizer).eos_token_id
        ends = [i for i, token in enumerate(prefix) if token == eos]
        if ends:
            prefix = prefix[: ends[-1] + 1]
        if full[: len(prefix)] != prefix:
            raise ValueError("the chat template does not render a user turn as a suffix of the dialogue before it")
        return full[len(prefix) :]

    # -- rewards -----------------------------------------------------------------------------------------

    def _make_reward_func(self) -> RewardFunc:
        async def rj_patient_reward(
            prompts: list[Any],
            completions: list[Any],
            completion_ids: list[Any] | None = None,
            rj_dialogue: list[list[dict[str, str]]] | None = None,
            **kwargs: Any,
        ) -> list[float | None]:
            if rj_dialogue is None:
                raise ValueError("rj_patient_reward needs the rollout's rj_dialogue: use it with patient_rollout")
            items: list[dict[str, Any]] = []
            owners: list[int] = []
            for episode, dialogue in enumerate(rj_dialogue):
                for position, message in enumerate(dialogue):
                    if message["role"] == "assistant" and position > 0:
                        items.append(
                            {"id": f"{episode}:{position}", "messages": dialogue[:position],
                             "completion": message["content"]}
                        )  # fmt: skip
                        owners.append(episode)
            answer = await shared_client(self.config).post("/v1/rewards", {**self._reward_request, "items": items})
            turn_rewards: list[list[float | None]] = [[] for _ in rj_dialogue]
            by_index = {item.get("index"): item for item in answer.get("items", [])}
            for index, owner in enumerate(owners):
                item = by_index.get(index)
                turn_rewards[owner].append(item.get("reward") if item else None)
            return [episode_reward(rewards, self.reward_policy, self.gamma) for rewards in turn_rewards]

        return rj_patient_reward


def patient_rollout(
    base_url: str | None = None,
    *,
    simulator: str,
    cases: Sequence[Mapping[str, Any]],
    max_turns: int = 3,
    seed: int | None = None,
    judge: str | None = None,
    rubric: str | None = None,
    reward_policy: RewardPolicy = "mean",
    gamma: float = 0.9,
    deadline_ms: int | None = None,
    api_key: str | None = None,
    timeout_s: float | None = None,
    max_retries: int | None = None,
) -> PatientRollout:
    """A ``rollout_func`` for ``GRPOTrainer`` with the patient simulator as the other party (see the module doc).

    ``cases``: patient cases as ``POST /v1/simulate`` takes them, each with an ``opening`` (the dataset prompt).
    ``judge``/``rubric`` left unset use the server's RJ_REWARD_JUDGE / RJ_REWARD_RUBRIC. Connection settings
    come from ``RJ_REWARD_URL``, ``RJ_API_KEY``, ``RJ_REWARD_TIMEOUT_S``, ``RJ_REWARD_RETRIES`` when unset.
    """
    config = ClientConfig.from_env(base_url=base_url, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries)
    request: dict[str, Any] = {"on_failure": "null"}
    if judge is not None:
        request["judge"] = judge
    if rubric is not None:
        request["rubric"] = rubric
    if deadline_ms is not None:
        request["deadline_ms"] = deadline_ms
    return PatientRollout(
        config, simulator=simulator, cases=cases, max_turns=max_turns, seed=seed, reward_request=request,
        reward_policy=reward_policy, gamma=gamma,
    )  # fmt: skip
