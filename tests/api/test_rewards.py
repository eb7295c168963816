"""POST /v1/rewards: GRPO batches through the app, the loopback judge, PostgreSQL and the verdict cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from judge.settings import Settings
from rubrics.aggregation import aggregate
from rubrics.registry import RubricRegistry
from tests.api.conftest import AppClient
from tests.api.samples import PATIENT_ZH, REASONING_ZH, RESPONSE_ZH
from tests.api.test_score import PRMED_AXES
from tests.support.openai_server import ChatRequest, OpenAIServer, Verdict, garbage

ITEM_KEYS = {
    "index", "id", "group_id", "reward", "passed", "scores", "layers", "status", "cache_hit", "truncated", "error",
    "position", "verdict_id", "score_method", "reason",
}  # fmt: skip
PROMPTS = [PATIENT_ZH, "我家娃发烧三天了，39度退不下来，吃了美林也不管用，急死了"]


def rollout(prompt: int, k: int, **changes: Any) -> dict[str, Any]:
    """Completion k to prompt ``prompt``, as a raw completion with a <think> block."""
    item: dict[str, Any] = {
        "id": f"p{prompt}-r{k}",
        "messages": [{"role": "user", "content": PROMPTS[prompt]}],
        "completion": f"<think>{REASONING_ZH}（草稿{k}）</think>{RESPONSE_ZH}（第{k}版）",
    }
    item.update(changes)
    return item


def body(*items: dict[str, Any], judge: str = "loop", **options: Any) -> dict[str, Any]:
    return {"rubric": "prmed@1", "judge": judge, "items": list(items), **options}


PRICES = {"currency": "USD", "prompt": 0.27, "cached": 0.07, "completion": 1.1}


def write_profiles(path: Path, server: OpenAIServer) -> Path:
    """Judges on the loopback server: plain, with logprobs, and group mode."""
    base = {"backend": "openai", "model": "judge-model", "base_url": server.url, "timeout_s": 5, "max_retries": 1}
    judges = [
        {"name": "loop", **base},
        {"name": "loop-lp", **base, "logprobs": True, "top_logprobs": 5},
        {"name": "loop-group", **base, "mode": "group", "permutations": 1},
        {"name": "loop-group2", **base, "mode": "group"},
        {"name": "loop-group-priced", **base, "mode": "group", "permutations": 1, "prices": PRICES},
    ]
    path.write_text(yaml.safe_dump({"judges": judges}), encoding="utf-8")
    return path


@pytest.fixture
def profiles_client(make_client: AppClient, tmp_path: Path, openai_server: OpenAIServer) -> Any:
    return make_client(judges_file=write_profiles(tmp_path / "judges-rl.yaml", openai_server))


def _prmed() -> Any:
    return RubricRegistry().resolve("prmed@1")


async def test_a_grpo_batch_gets_rewards_scores_and_group_statistics(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    items = [rollout(p, k) for p in range(2) for k in range(3)]
    resp = await client.post("/v1/rewards", json=body(*items))
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["rubric"] == "prmed@1" and out["mode"] == "joint" and set(out["axes"]) == PRMED_AXES
    results = out["items"]
    assert [r["id"] for r in results] == [i["id"] for i in items] and [r["index"] for r in results] == list(range(6))
    rubric = _prmed()
    for result in results:
        assert set(result) == ITEM_KEYS and set(result["scores"]) == PRMED_AXES
        assert set(result["layers"]) == {"cot", "response", "cross"}
        assert result["status"] == "ok" and result["error"] is None and result["cache_hit"] is False
        assert result["truncated"] is False and result["position"] is None
        # The reward is the rubric's aggregate of the per-axis scores, nothing else.
        scores = {k: int(v) for k, v in result["scores"].items()}
        assert result["reward"] == pytest.approx(aggregate(rubric, scores).reward)
        assert result["passed"] == all(v == 5 for v in scores.values())
    # No group_id: rollouts of one prompt form one group.
    assert results[0]["group_id"] == results[2]["group_id"] != results[3]["group_id"]
    groups = out["groups"]
    assert [g["size"] for g in groups] == [3, 3]
    for group, members in zip(groups, (results[:3], results[3:]), strict=True):
        rewards = [r["reward"] for r in members]
        mean = sum(rewards) / 3
        assert group["group_id"] == members[0]["group_id"] and group["scored"] == 3
        assert group["mean"] == pytest.approx(mean)
        assert group["std"] == pytest.approx((sum((r - mean) ** 2 for r in rewards) / 3) ** 0.5)
        assert group["distinct"] == len({round(r, 9) for r in rewards})
        assert group["zero_variance"] == (group["distinct"] == 1)
    assert out["zero_variance_fraction"] == sum(g["zero_variance"] for g in groups) / 2
    assert out["usage"]["calls"] == 6 == openai_server.calls and out["usage"]["rewarded"] == 6

    again = (await client.post("/v1/rewards", json=body(*items))).json()
    assert all(r["cache_hit"] for r in again["items"]) and openai_server.calls == 6
    assert [r["reward"] for r in again["items"]] == [r["reward"] for r in results]


async def test_tied_rollouts_make_a_zero_variance_group(client: httpx.AsyncClient, openai_server: OpenAIServer) -> None:
    def tie_first_prompt(request: ChatRequest) -> dict[str, int]:
        return dict.fromkeys(request.axis_keys, 4) if any(PROMPTS[0] in t for t in request.fenced_texts) else {}

    openai_server.default = Verdict(scores=tie_first_prompt)
    out = (await client.post("/v1/rewards", json=body(*(rollout(p, k) for p in range(2) for k in range(4))))).json()
    tied, other = out["groups"]
    assert (tied["distinct"], tied["zero_variance"], tied["std"]) == (1, True, 0.0)
    assert other["zero_variance"] is False
    assert out["zero_variance_fraction"] == 0.5


async def test_explicit_group_ids_override_the_conversation(client: httpx.AsyncClient) -> None:
    items = [rollout(0, 0, group_id="第一组"), rollout(1, 0, group_id="第一组"), rollout(0, 1, group_id="第二组")]
    out = (await client.post("/v1/rewards", json=body(*items))).json()
    assert [r["group_id"] for r in out["items"]] == ["第一组", "第一组", "第二组"]
    assert [(g["group_id"], g["size"]) for g in out["groups"]] == [("第一组", 2), ("第二组", 1)]


def _fail_version_1(request: ChatRequest) -> Any:
    return garbage() if any("（第1版）" in t for t in request.fenced_texts) else Verdict()


@pytest.mark.parametrize(
    ("policy", "reward", "kept"),
    [("null", None, [0, 1, 2]), ("floor", 0.0, [0, 1, 2]), ("skip", "absent", [0, 2])],
)
async def test_on_failure_decides_a_failed_items_reward(
    client: httpx.AsyncClient, openai_server: OpenAIServer, policy: str, reward: Any, kept: list[int]
) -> None:
    openai_server.default = _fail_version_1
    out = (await client.post("/v1/rewards", json=body(*(rollout(0, k) for k in range(3)), on_failure=policy))).json()
    assert [r["index"] for r in out["items"]] == kept
    assert all(r["status"] == "ok" and isinstance(r["reward"], float) for r in out["items"] if r["index"] != 1)
    if reward == "absent":
        assert out["skipped"] == [1] and out["groups"][0]["size"] == 2 and out["usage"]["skipped"] == 1
    else:
        failed = out["items"][1]
        assert (failed["status"], failed["reward"], failed["passed"]) == ("parse_error", reward, None)
        assert failed["error"] and all(v is None for v in failed["scores"].values())
        assert out["skipped"] == [] and out["groups"][0]["size"] == 3
        assert out["groups"][0]["scored"] == (2 if reward is None else 3)
    assert out["usage"]["failed"] == 1 and out["usage"]["rewarded"] == 2


async def test_a_malformed_item_gets_status_invalid_not_a_422(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    items: list[Any] = [rollout(0, 0), {"id": "坏的", "messages": [{"role": "user", "content": PATIENT_ZH}]}, "x"]
    resp = await client.post("/v1/rewards", json=body(*items, on_failure="floor"))
    assert resp.status_code == 200
    ok, missing, junk = resp.json()["items"]
    assert ok["status"] == "ok" and openai_server.calls == 1
    assert (missing["id"], missing["status"], missing["reward"]) == ("坏的", "invalid", 0.0)
    assert "needs `completion` or `response`" in missing["error"]
    # Invalid items without a group_id stay out of the group statistics.
    assert missing["group_id"] is None and [g["size"] for g in resp.json()["groups"]] == [1]
    assert (
        junk["status"] == "invalid"
        and "valid dictionary" in junk["error"]
        and set(junk) == ITEM_KEYS
        and set(junk["scores"]) == PRMED_AXES
    )


async def test_request_level_errors(client: httpx.AsyncClient, make_client: AppClient) -> None:
    missing_items = await client.post("/v1/rewards", json={"judge": "loop"})
    assert missing_items.status_code == 422 and missing_items.json()["error"]["field"] == "items"
    bad_policy = await client.post("/v1/rewards", json=body(rollout(0, 0), on_failure="zero"))
    assert bad_policy.status_code == 422 and bad_policy.json()["error"]["field"] == "on_failure"
    unknown = await client.post("/v1/rewards", json=body(rollout(0, 0), judge="nobody"))
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "JudgeNotFound"
    no_judge = await client.post("/v1/rewards", json={"items": [rollout(0, 0)]})
    assert no_judge.status_code == 422 and no_judge.json()["error"]["field"] == "judge"
    empty = (await client.post("/v1/rewards", json=body())).json()
    assert (empty["items"], empty["groups"], empty["zero_variance_fraction"]) == ([], [], None)
    async with make_client(max_samples_per_request=2) as small:
        over = await small.post("/v1/rewards", json=body(*(rollout(0, k) for k in range(3))))
    assert over.status_code == 413 and over.json()["error"]["field"] == "items"


async def test_rubric_and_judge_default_to_the_server_settings(
    make_client: AppClient, openai_server: OpenAIServer
) -> None:
    async with make_client(reward_judge="loop", reward_rubric="prmed@1") as app:
        out = (await app.post("/v1/rewards", json={"items": [rollout(0, 0)]})).json()
    assert (out["judge"], out["rubric"]) == ("loop", "prmed@1") and out["items"][0]["status"] == "ok"


async def test_deadline_follows_the_policy_and_the_late_verdict_is_kept(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    openai_server.default = Verdict(delay_s=0.6)
    items = [rollout(0, k) for k in range(2)]
    late = (await client.post("/v1/rewards", json=body(*items, deadline_ms=100, on_failure="floor"))).json()
    assert [(r["status"], r["reward"]) for r in late["items"]] == [("timeout", 0.0), ("timeout", 0.0)]
    assert late["usage"]["timed_out"] == 2

    joined = (await client.post("/v1/rewards", json=body(*items))).json()  # the judge calls went on: joined
    assert all(r["status"] == "ok" and not r["cache_hit"] for r in joined["items"])
    again = (await client.post("/v1/rewards", json=body(*items))).json()
    assert all(r["cache_hit"] for r in again["items"]) and openai_server.calls == 2


async def test_over_long_cot_and_response_are_cut_and_flagged(
    make_client: AppClient, openai_server: OpenAIServer
) -> None:
    long_cot = "考虑急性冠脉综合征。" * 200
    item = rollout(0, 0, completion=None, reasoning=long_cot, response=RESPONSE_ZH + "多喝热水。" * 100)
    async with make_client(max_reasoning_chars=300, max_response_chars=80) as app:
        out = (await app.post("/v1/rewards", json=body(item, rollout(0, 1)))).json()
    cut, short = out["items"]
    assert cut["truncated"] is True and cut["status"] == "ok" and short["truncated"] is False
    assert out["usage"]["truncated"] == 1
    judged = next(r.request for r in openai_server.requests if any(long_cot[:300] in t for t in r.request.fenced_texts))
    assert long_cot[:301] not in judged.prompt and "已截断" in judged.prompt


async def test_multi_turn_dialogues_judge_the_last_turn_with_the_whole_dialogue(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    def dialogue(first_question: str) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": first_question},
            {"role": "assistant", "content": "请问孩子现在精神怎么样？有没有抽搐？"},
            {"role": "user", "content": "精神不太好，一直哭，没抽搐，我好怕"},
        ]

    same_turn = {"completion": f"<think>{REASONING_ZH}</think>{RESPONSE_ZH}"}
    a = {"id": "a", "messages": dialogue(PROMPTS[1]), **same_turn}
    b = {"id": "b", "messages": dialogue("孩子发烧两天了，38度多"), **same_turn}
    out = (await client.post("/v1/rewards", json=body(a, b))).json()
    assert [r["status"] for r in out["items"]] == ["ok", "ok"]
    # Same last turn, other dialogue: another cache key, another judge call.
    assert openai_server.calls == 2 and out["items"][0]["group_id"] != out["items"][1]["group_id"]
    fenced = next(r.request.fenced_texts for r in openai_server.requests if PROMPTS[1] in r.request.prompt)
    assert fenced[:3] == [m["content"] for m in dialogue(PROMPTS[1])]
    assert fenced[3:5] == [REASONING_ZH, RESPONSE_ZH]
    again = (await client.post("/v1/rewards", json=body(a))).json()
    assert again["items"][0]["cache_hit"] and openai_server.calls == 2


async def test_logprobs_make_rewards_continuous_so_integer_ties_are_told_apart(
    profiles_client: Any, openai_server: OpenAIServer
) -> None:
    # Every rollout gets 4 on every axis; only the judge's confidence in the 4 differs between rollouts.
    def confident(request: ChatRequest) -> Verdict:
        version = next(k for k in range(4) if any(f"（第{k}版）" in t for t in request.fenced_texts))
        return Verdict(scores=4, p_top=0.5 + 0.1 * version)

    openai_server.default = confident
    items = [rollout(0, k) for k in range(4)]
    async with profiles_client as app:
        plain = (await app.post("/v1/rewards", json=body(*items))).json()
        continuous = (await app.post("/v1/rewards", json=body(*items, judge="loop-lp"))).json()
    assert plain["groups"][0]["zero_variance"] is True and plain["zero_variance_fraction"] == 1.0
    assert {r["reward"] for r in plain["items"]} == {0.75}
    assert continuous["groups"][0]["distinct"] == 4 and continuous["zero_variance_fraction"] == 0.0
    rewards = [r["reward"] for r in continuous["items"]]
    assert rewards == sorted(rewards) and rewards[-1] < 0.75  # more confident in the 4: closer to 0.75, from below
    assert all(r["passed"] is False for r in continuous["items"])  # pass/fail still uses the integers
    assert all(v != 4.0 for r in continuous["items"] for v in r["scores"].values())


async def test_group_mode_makes_one_judge_call_per_group_and_records_positions(
    profiles_client: Any, openai_server: OpenAIServer
) -> None:
    items = [rollout(p, k) for p in range(2) for k in range(4)]
    async with profiles_client as app:
        out = (await app.post("/v1/rewards", json=body(*items, judge="loop-group"))).json()
        again = (await app.post("/v1/rewards", json=body(*items[::-1], judge="loop-group"))).json()
    assert out["mode"] == "group" and out["usage"]["calls"] == 2 and openai_server.calls == 2
    assert [r["id"] for r in out["items"]] == [i["id"] for i in items]  # input order, not group order
    assert all(r["status"] == "ok" for r in out["items"])
    for members in (out["items"][:4], out["items"][4:]):
        assert sorted(r["position"] for r in members) == [1, 2, 3, 4]
    assert all(r["cache_hit"] for r in again["items"]) and openai_server.calls == 2
    assert {r["id"]: r["reward"] for r in again["items"]} == {r["id"]: r["reward"] for r in out["items"]}


async def test_settings_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RJ_MAX_REASONING_CHARS", "1000")
    monkeypatch.setenv("RJ_REWARD_JUDGE", "deepseek")
    monkeypatch.setenv("RJ_REWARD_FALLBACK", "-1")
    settings = Settings(_env_file=None)
    assert (settings.max_reasoning_chars, settings.max_response_chars) == (1000, None)
    assert (settings.reward_judge, settings.reward_fallback, settings.reward_rubric) == ("deepseek", -1.0, "prmed")


async def test_a_rubrics_length_penalty_lowers_the_reward_of_long_outputs(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    body_ = _prmed().model_dump(mode="json")
    body_["name"] = "prmed-short"
    body_["reward_policy"]["length_penalty"] = {"free_chars": 200, "per_1k_chars": 0.5, "max_penalty": 0.5}
    assert (await client.post("/v1/rubrics", json=body_)).status_code == 201
    openai_server.default = Verdict(scores=5)
    short = rollout(0, 0, completion=None, reasoning="简短推理。", response="请立即就医。")
    long = rollout(0, 1, completion=None, reasoning="详细推理。" * 100, response="请立即就医。" * 50)
    out = (await client.post("/v1/rewards", json={**body(short, long), "rubric": "prmed-short"})).json()
    chars = len("详细推理。" * 100) + len("请立即就医。" * 50)
    assert [r["reward"] for r in out["items"]] == [1.0, pytest.approx(1.0 - min(0.5, 0.5 * (chars - 200) / 1000))]
    assert [r["passed"] for r in out["items"]] == [True, True]  # the penalty lowers the reward, not the pass


async def test_a_priced_group_judge_says_what_the_batch_cost(profiles_client: Any, openai_server: OpenAIServer) -> None:
    items = [rollout(p, k) for p in range(2) for k in range(3)]
    async with profiles_client as client:
        unpriced = (await client.post("/v1/rewards", json=body(*items[:3], judge="loop-group"))).json()
        out = (await client.post("/v1/rewards", json=body(*items, judge="loop-group-priced"))).json()
    assert unpriced["usage"]["cost"] is None
    usage = out["usage"]
    # Prices are not part of the profile's hash: the first prompt's group comes from the cache (costing nothing),
    # the second is judged in one group call (prmed@1, one display order).
    assert usage["cached"] == 3 and usage["calls"] == 1
    uncached = usage["prompt_tokens"] - usage["cached_tokens"]
    amount = (uncached * 0.27 + usage["cached_tokens"] * 0.07 + usage["completion_tokens"] * 1.1) / 1e6
    assert usage["cost"] == {"amount": pytest.approx(amount, abs=1e-6), "currency": "USD", "unpriced_calls": 0}
