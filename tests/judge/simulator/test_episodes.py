"""Offline episodes: policy -> simulator -> policy, each policy turn judged in context, in Chinese."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from judge.simulator.episode_rewards import episode_reward
from judge.simulator.episodes import EpisodeConfig, run_episode, simulate_file, summarise
from judge.simulator.schemas import PatientCase
from judge.simulator.service import SimulatorService
from tests.support.openai_server import ChatRequest, OpenAIServer, Patient, Text, Verdict
from tests.support.simulator_cases import CASE_RELATIVE_ZH, CASE_ZH

PRMED_AXES = 13


def config(service: SimulatorService, **changes: object) -> EpisodeConfig:
    values: dict[str, object] = {
        "policy": service.profiles.policy("policy"),
        "simulator": service.profiles.simulator("patient"),
        "rubric": service.runtime.rubrics.resolve("prmed"),
        "judge": service.runtime.profiles.get("loop"),
        "turns": 3,
        "seed": 1,
    }
    values.update(changes)
    return EpisodeConfig(**values)  # type: ignore[arg-type]


def test_episode_reward_policies() -> None:
    rewards = [0.8, 0.4, 0.6]
    assert episode_reward(rewards, "mean") == pytest.approx(0.6)
    assert episode_reward(rewards, "min") == 0.4
    assert episode_reward(rewards, "last") == 0.6
    # Normalised discounted return: (0.8 + 0.5*0.4 + 0.25*0.6) / 1.75.
    assert episode_reward(rewards, "discounted", gamma=0.5) == pytest.approx(1.15 / 1.75)
    # An unscored turn: no episode reward is invented under any policy.
    for policy in ("mean", "min", "last", "discounted"):
        assert episode_reward([0.8, None, 0.6], policy) is None  # type: ignore[arg-type]
    summary = summarise([0.8, None], [True, None], "min", 0.9)
    assert summary["unscored_turns"] == [2] and summary["episode_reward"] is None and summary["all_passed"] is None


async def test_an_episode_judges_every_policy_turn_in_context(
    service: SimulatorService, openai_server: OpenAIServer
) -> None:
    episode = await run_episode(service, PatientCase.model_validate(CASE_ZH), config(service))
    assert [t["turn"] for t in episode["turns"]] == [1, 2, 3]
    assert episode["end_reason"] == "max_turns"
    roles = [m["role"] for m in episode["dialogue"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert episode["dialogue"][0]["content"] == CASE_ZH["opening"]
    # The patient heard the reply, not the policy's chain of thought.
    assert "<think>" in episode["turns"][0]["completion"] and "<think>" not in episode["dialogue"][1]["content"]
    for turn in episode["turns"]:
        assert len(turn["verdict"]["axes"]) == PRMED_AXES and turn["verdict"]["reward"] is not None
    # Policy, judge, simulator, policy, judge, simulator, policy, judge: no simulator call after the last turn.
    assert openai_server.calls == 8 and episode["usage"]["simulator_calls"] == 2
    judged: list[ChatRequest] = [c.request for c in openai_server.requests if c.request.axis_keys]
    # The third turn is judged with the whole dialogue before it: the patient's follow-ups are in its fences.
    follow_up = episode["dialogue"][4]["content"]
    assert any(follow_up in text for text in judged[2].fenced_texts)
    assert not any(follow_up in text for text in judged[0].fenced_texts)
    rewards = [t["verdict"]["reward"] for t in episode["turns"]]
    summary = episode["summary"]
    assert summary["turn_rewards"] == rewards and summary["min"] == min(rewards) and summary["last"] == rewards[-1]
    assert summary["episode_reward"] == pytest.approx(sum(rewards) / 3)
    # The policy is called with the dialogue in chat roles, its own earlier replies as assistant turns.
    policy_calls = [c.request for c in openai_server.requests if c.request.body["model"] == "policy-model"]
    assert [m["role"] for m in policy_calls[2].messages] == roles[:5]


async def test_the_visit_ends_when_the_patients_need_is_met(
    service: SimulatorService, openai_server: OpenAIServer
) -> None:
    openai_server.default = lambda r: Patient(satisfied_after=2) if r.is_simulator else Verdict()
    episode = await run_episode(service, PatientCase.model_validate(CASE_ZH), config(service, turns=5))
    assert episode["end_reason"] == "need_met" and len(episode["turns"]) == 2
    assert episode["dialogue"][-1]["role"] == "user"


async def test_an_unscored_turn_leaves_the_episode_without_a_reward(
    service: SimulatorService, openai_server: OpenAIServer
) -> None:
    openai_server.default = lambda r: Text("无法评分") if r.axis_keys else Verdict()
    episode = await run_episode(service, PatientCase.model_validate(CASE_ZH), config(service, turns=2))
    assert [t["verdict"]["reward"] for t in episode["turns"]] == [None, None]
    assert episode["summary"]["episode_reward"] is None and episode["summary"]["unscored_turns"] == [1, 2]


async def test_the_simulator_writes_the_opening_when_the_case_has_none(
    service: SimulatorService, openai_server: OpenAIServer
) -> None:
    case = PatientCase.model_validate({**CASE_RELATIVE_ZH, "opening": None})
    episode = await run_episode(service, case, config(service, turns=1))
    assert episode["dialogue"][0]["content"] == "医生啊我跟你讲，" + CASE_RELATIVE_ZH["chief_complaint"]
    assert episode["usage"]["simulator_calls"] == 1


async def test_a_file_run_resumes_and_reruns_cost_nothing(
    service: SimulatorService, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    source = tmp_path / "cases.jsonl"
    bad = {**CASE_ZH, "perturbation": {"types": ["吼叫"], "intensity": "heavy"}}
    lines = [orjson.dumps(c).decode() for c in (CASE_ZH, bad, CASE_RELATIVE_ZH)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out, errors = tmp_path / "episodes.jsonl", tmp_path / "episodes.errors.jsonl"
    progress: list[int] = []
    stats = await simulate_file(service, source, out, errors, config(service, turns=2), on_progress=progress.append)
    assert stats.episodes == 2 and stats.invalid == 1 and sum(progress) == 3
    episodes = [orjson.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(e["line"] for e in episodes) == [1, 3]
    assert "perturbation.types.0" in orjson.loads(errors.read_text(encoding="utf-8"))["error"]
    calls = openai_server.calls
    again = await simulate_file(service, source, out, errors, config(service, turns=2))
    assert again.skipped == 3 and again.episodes == 0 and openai_server.calls == calls
    # A fresh output re-runs the episodes; simulator turns and verdicts come from the cache.
    fresh = tmp_path / "again.jsonl"
    await simulate_file(service, source, fresh, tmp_path / "again.errors.jsonl", config(service, turns=2))
    replay = {e["line"]: e for e in map(orjson.loads, fresh.read_text(encoding="utf-8").splitlines())}
    first = {e["line"]: e for e in episodes}
    assert replay[1]["dialogue"] == first[1]["dialogue"] and replay[1]["usage"]["cached_turns"] == 1
    assert all(t["verdict"]["cached"] for t in replay[1]["turns"])
