"""The reward model wired into the service: rm train from stored verdicts, reward_model profiles in /v1/score and
/v1/rewards, vLLM's /classify, and hot reload of a newly activated version (tiny model, CPU, PostgreSQL store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from api.app import create_app
from judge.cli import app as cli_app
from judge.profiles import JudgeProfile
from judge.runtime import Runtime
from judge.samples import Message, Sample, SampleIn, normalise
from judge.settings import Settings, get_settings
from judge.store.database import create_engine, make_session_factory
from judge.store.reward_models_repository import RewardModelRecord, RewardModelRepository
from judge.store.rubrics_repository import RubricRepository
from judge.verdicts import AxisResult, AxisStatus, JudgeOutcome
from reward_model.artifacts import read_metadata
from reward_model.config import ModelSettings, TrainSettings
from reward_model.data import LabelledRecord, render
from reward_model.model import ScoringModel
from reward_model.pipeline import train_from_records
from reward_model.scores import Scores
from rubrics.aggregation import aggregate
from rubrics.schema import Rubric

from .support import AXES, MAX_LENGTH, TEST_SPLIT

RM_NAME = "rm-zh"
PROFILE = "rm-local"


def _sample(record: LabelledRecord) -> Sample:
    conv = record.conversation
    messages = [Message(role=role, content=content) for role, content in conv.messages]  # type: ignore[arg-type]
    return normalise(SampleIn(messages=messages, reasoning=conv.reasoning, response=conv.response))


def _sample_json(record: LabelledRecord) -> dict[str, Any]:
    conv = record.conversation
    return {
        "messages": [{"role": role, "content": content} for role, content in conv.messages],
        "reasoning": conv.reasoning,
        "response": conv.response,
    }


async def _store_rubric(pg_url: str, rubric: Rubric) -> None:
    engine = create_engine(pg_url)
    try:
        async with make_session_factory(engine)() as session:
            await RubricRepository(session).add(rubric)
            await session.commit()
    finally:
        await engine.dispose()


async def _register(pg_url: str, path: Path, *, active: bool) -> RewardModelRecord:
    meta = read_metadata(path)
    engine = create_engine(pg_url)
    try:
        async with make_session_factory(engine)() as session:
            record = await RewardModelRepository(session).register(
                RM_NAME,
                path=str(path),
                base_model=meta.base_model,
                rubric_hash=meta.rubric_hash,
                axis_keys=meta.axis_keys,
                active=active,
            )
            await session.commit()
            return record
    finally:
        await engine.dispose()


def _settings(pg_url: str, judges_file: Path | None = None) -> Settings:
    return Settings(database_url=pg_url, judges_file=judges_file, _env_file=None)  # type: ignore[call-arg]


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rj.test", timeout=60) as client:
            yield client


@pytest.fixture(scope="session")
def second_artifact(
    tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, records: list[LabelledRecord], rubric: Rubric
) -> Path:
    """Another version of the same model (same base, axes, head and input limit): a few steps only, other weights."""
    out = tmp_path_factory.mktemp("rm-second")
    train_from_records(
        records[:96],
        out_dir=out,
        rubric_ref=rubric.ref,
        rubric_hash=rubric.content_hash,
        axis_keys=AXES,
        model=ModelSettings(base_model=str(tiny_base), head="ordinal", max_length=MAX_LENGTH),
        train=TrainSettings(learning_rate=3e-3, epochs=1, batch_size=32, seed=1),
        split=TEST_SPLIT,
        device="cpu",
    )
    return out


@pytest.fixture
async def store(pg_url: str, pg_engine: AsyncEngine, rubric: Rubric) -> str:
    """The emptied test database with the tests' rubric stored (so a runtime knows it)."""
    await _store_rubric(pg_url, rubric)
    return pg_url


@pytest.fixture
def judges_file(tmp_path: Path) -> Path:
    path = tmp_path / "judges.yaml"
    profile = {"name": PROFILE, "backend": "reward_model", "reward_model": RM_NAME}
    path.write_text(yaml.safe_dump({"judges": [profile]}, allow_unicode=True), encoding="utf-8")
    return path


# --- rm train from stored verdicts -------------------------------------------------------------------------------


class Teacher:
    """A judge that answers each sample's synthetic labels (what a verdict of a real judge would store)."""

    def __init__(self, profile: JudgeProfile, labels: dict[str, dict[str, int]]) -> None:
        self.profile = profile
        self._labels = labels

    async def score(self, sample: Sample, rubric: Rubric) -> JudgeOutcome:
        scores = self._labels[sample.response]
        return JudgeOutcome(
            axes={
                k: AxisResult(score=scores[k], status=AxisStatus.ok, rationale="依据评分标准") for k in rubric.axis_keys
            }
        )

    async def aclose(self) -> None:
        return None


async def _judge_and_store(pg_url: str, rubric: Rubric, records: list[LabelledRecord]) -> None:
    labels = {r.conversation.response: {k: v[0] for k, v in r.scores.items()} for r in records}
    teacher = JudgeProfile(name="teacher", backend="openai", model="teacher-model")
    runtime = await Runtime.open(_settings(pg_url), backend_factory=lambda p: Teacher(p, labels))
    async with runtime:
        batch = await runtime.scorer.score(rubric, teacher, [_sample(r) for r in records])
    assert all(item.verdict is not None and item.verdict.complete for item in batch.items)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, store: str) -> Iterator[CliRunner]:
    monkeypatch.setenv("RJ_DATABASE_URL", store)
    monkeypatch.delenv("RJ_JUDGES_FILE", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_rm_train_from_stored_verdicts_registers_the_artifact(
    cli_env: CliRunner, store: str, tiny_base: Path, records: list[LabelledRecord], rubric: Rubric, tmp_path: Path
) -> None:
    chosen = records[:80]
    # Verdicts stored through the real scorer and store; the CLI runs its own event loops, so no test loop here.
    asyncio.run(_judge_and_store(store, rubric, chosen))
    out = tmp_path / "rm-out"
    args = ["rm", "train", "--rubric", rubric.ref, "--from-judge", "teacher", "--base", str(tiny_base)]
    args += ["--out", str(out), "--name", RM_NAME, "--epochs", "1", "--max-length", str(MAX_LENGTH)]
    args += ["--learning-rate", "3e-3", "--batch-size", "32", "--device", "cpu"]
    result = cli_env.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert "80 labelled records" in result.output
    assert f"registered {RM_NAME}@1 (active)" in result.output
    meta = read_metadata(out)
    assert meta.data["judges"] == ["teacher"] and meta.data["records"] == 80
    assert meta.rubric_hash == rubric.content_hash and meta.axis_keys == list(AXES)

    async def registered() -> list[RewardModelRecord]:
        engine = create_engine(store)
        try:
            async with make_session_factory(engine)() as session:
                return await RewardModelRepository(session).list()
        finally:
            await engine.dispose()

    [record] = asyncio.run(registered())
    assert (record.name, record.version, record.active) == (RM_NAME, 1, True)
    assert record.path == str(out.resolve()) and record.config["artifact_id"] == meta.artifact_id
    assert record.metrics["steps"] == meta.metrics["steps"] > 0
    listed = cli_env.invoke(cli_app, ["rm", "list"])
    assert listed.exit_code == 0 and RM_NAME in listed.output
    # Another judge's verdicts are not there: nothing to train on.
    refused = cli_env.invoke(cli_app, args[:5] + ["nobody"] + args[6:])
    assert refused.exit_code == 2 and "no training examples" in refused.output


# --- serving -----------------------------------------------------------------------------------------------------


async def test_a_reward_model_profile_scores_through_v1_score_and_rewards(
    store: str, judges_file: Path, artifact_dir: Path, scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    await _register(store, artifact_dir, active=True)
    chosen = records[3:6]
    async with _client(_settings(store, judges_file)) as client:
        response = await client.post(
            "/v1/score",
            json={"rubric": "rm-test", "judge": PROFILE, "samples": [_sample_json(r) for r in chosen]},
        )
        assert response.status_code == 200, response.text
        direct = scoring.score([r.conversation for r in chosen])
        for result, scores in zip(response.json()["results"], direct, strict=True):
            assert result["error"] is None and result["reward"] is not None
            for key, axis in result["axes"].items():
                assert axis["status"] == "ok" and axis["score_method"] == "model"
                assert axis["score"] == scores.level_of(key)
                assert axis["expected"] == pytest.approx(scores.expected_of(key), abs=1e-4)
        rewards = await client.post(
            "/v1/rewards", json={"rubric": "rm-test", "judge": PROFILE, "items": [_sample_json(chosen[0])]}
        )
        assert rewards.status_code == 200, rewards.text
        [item] = rewards.json()["items"]
        assert item["reward"] == pytest.approx(response.json()["results"][0]["reward"])
        listing = (await client.get("/v1/reward-models")).json()
        assert listing["loaded"][RM_NAME]["artifact_id"] == scoring.version


def _expected_row(scores: Scores, rubric: Rubric, activated: bool) -> list[float]:
    expected = {k: scores.expected_of(k) for k in AXES}
    reward = aggregate(rubric, {k: scores.level_of(k) for k in AXES}, expected).reward
    assert reward is not None
    if activated:
        row = [scores.pass_probability(k, rubric.pass_policy.threshold_for(k)) for k in AXES]
    else:
        row = [expected[k] for k in AXES]
    return [*row, reward]


async def test_classify_answers_in_vllms_shape_with_the_reward_last(
    store: str,
    judges_file: Path,
    artifact_dir: Path,
    scoring: ScoringModel,
    rubric: Rubric,
    records: list[LabelledRecord],
) -> None:
    await _register(store, artifact_dir, active=True)
    texts = [render(scoring.tokenizer, r.conversation) for r in records[:2]]
    direct = scoring.score(texts)
    async with _client(_settings(store, judges_file)) as client:
        raw = await client.post("/classify", json={"model": PROFILE, "input": texts, "use_activation": False})
        assert raw.status_code == 200, raw.text
        body = raw.json()
        assert body["object"] == "list" and body["id"].startswith("classify-") and body["model"] == PROFILE
        assert isinstance(body["created"], int)
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
        assert body["usage"]["completion_tokens"] == 0
        for index, (item, scores) in enumerate(zip(body["data"], direct, strict=True)):
            assert item["index"] == index and "object" not in item  # vLLM's ClassificationData has none
            assert item["num_classes"] == len(AXES) + 1 == len(item["probs"])
            assert item["probs"] == pytest.approx(_expected_row(scores, rubric, activated=False), abs=1e-4)
            assert item["label"] in ("pass", "fail")
        # The older field name means the same; activation gives pass probabilities, the reward still last.
        old = (await client.post("/classify", json={"input": texts[0], "activation": False})).json()
        assert old["data"][0]["probs"] == pytest.approx(body["data"][0]["probs"], abs=1e-6)
        act = (
            await client.post("/classify", json={"model": PROFILE, "input": texts[0], "use_activation": True})
        ).json()
        probs = act["data"][0]["probs"]
        assert probs == pytest.approx(_expected_row(direct[0], rubric, activated=True), abs=1e-4)
        assert all(0.0 <= p <= 1.0 for p in probs[:-1])
        assert probs[-1] == pytest.approx(body["data"][0]["probs"][-1], abs=1e-6)
        # Token ids score as the same text does.
        ids = list(scoring.encode([texts[0]])[0].input_ids)
        by_ids = (await client.post("/classify", json={"input": ids, "use_activation": False})).json()
        assert by_ids["data"][0]["probs"] == pytest.approx(body["data"][0]["probs"], abs=1e-4)
        # Errors in vLLM's shape.
        empty = await client.post("/classify", json={"model": PROFILE, "input": []})
        assert empty.status_code == 400 and empty.json()["error"]["code"] == 400
        assert empty.json()["error"]["type"] == "BadRequestError"
        unknown = await client.post("/classify", json={"model": "没有这个模型", "input": "你好"})
        assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "NotFoundError"
        bad_ids = await client.post("/classify", json={"input": [10**9]})
        assert bad_ids.status_code == 400 and "token ids" in bad_ids.json()["error"]["message"]


async def test_classify_takes_verls_model_path_aliases_and_the_messages_form(
    store: str, tmp_path: Path, artifact_dir: Path, scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    await _register(store, artifact_dir, active=True)
    record = records[3]
    text = render(scoring.tokenizer, record.conversation)
    judges = tmp_path / "aliased.yaml"
    profile = {"name": PROFILE, "backend": "reward_model", "reward_model": RM_NAME, "aliases": ["奖励模型"]}
    judges.write_text(yaml.safe_dump({"judges": [profile]}, allow_unicode=True), encoding="utf-8")
    async with _client(_settings(store, judges)) as client:
        base = await client.post("/classify", json={"model": PROFILE, "input": text, "use_activation": False})
        expected = base.json()["data"][0]["probs"]
        # verl sends reward_model.model_path: a hub id or a path resolves to the only reward_model profile.
        for name in ("Qwen/Qwen3-0.6B", "/models/rm-prmed-v1", "奖励模型", RM_NAME):
            answer = await client.post("/classify", json={"model": name, "input": text, "use_activation": False})
            assert answer.status_code == 200, (name, answer.text)
            assert answer.json()["model"] == PROFILE
            assert answer.json()["data"][0]["probs"] == pytest.approx(expected, abs=1e-5)
        # vLLM's chat form: the model's own template renders it, the last (assistant) turn is judged.
        conv = record.conversation
        think = f"<think>\n{conv.reasoning}\n</think>\n\n{conv.response}" if conv.reasoning else conv.response
        messages = [{"role": role, "content": content} for role, content in conv.messages]
        chat = await client.post(
            "/classify",
            json={"model": PROFILE, "messages": [*messages, {"role": "assistant", "content": think}],
                  "use_activation": False},
        )  # fmt: skip
        assert chat.status_code == 200, chat.text
        assert chat.json()["data"][0]["probs"] == pytest.approx(expected, abs=1e-4)
        no_turn = await client.post("/classify", json={"model": PROFILE, "messages": messages})
        assert no_turn.status_code == 400 and no_turn.json()["error"]["param"] == "messages"
    # Two reward_model profiles: a path is ambiguous and the error says how to settle it.
    two = tmp_path / "two.yaml"
    other = {"name": "rm-other", "backend": "reward_model", "reward_model": RM_NAME}
    two.write_text(yaml.safe_dump({"judges": [profile, other]}, allow_unicode=True), encoding="utf-8")
    async with _client(_settings(store, two)) as client:
        ambiguous = await client.post("/classify", json={"model": "Qwen/Qwen3-0.6B", "input": text})
        assert ambiguous.status_code == 400 and "aliases" in ambiguous.json()["error"]["message"]


async def test_activate_and_reload_swap_versions_without_restart(
    store: str,
    judges_file: Path,
    artifact_dir: Path,
    second_artifact: Path,
    scoring: ScoringModel,
    records: list[LabelledRecord],
) -> None:
    first = await _register(store, artifact_dir, active=True)
    await _register(store, second_artifact, active=False)
    text = render(scoring.tokenizer, records[7].conversation)
    request = {"model": PROFILE, "input": text, "use_activation": False}
    second_id = read_metadata(second_artifact).artifact_id
    async with _client(_settings(store, judges_file)) as client:
        before = (await client.post("/classify", json=request)).json()["data"][0]["probs"]
        activated = await client.post(f"/v1/reward-models/{RM_NAME}/activate", json={"version": 2})
        assert activated.status_code == 200, activated.text
        [swap] = activated.json()["swapped"]
        assert (swap["previous"], swap["current"], swap["version"]) == (scoring.version, second_id, 2)
        after = (await client.post("/classify", json=request)).json()["data"][0]["probs"]
        assert after != pytest.approx(before, abs=1e-4)
        listing = (await client.get("/v1/reward-models")).json()
        assert [(m["version"], m["active"]) for m in listing["data"]] == [(1, False), (2, True)]
        assert listing["loaded"][RM_NAME]["version"] == 2
        # Activated elsewhere (rubric-judge rm activate), then reloaded here: back to the first version's outputs.
        engine = create_engine(store)
        try:
            async with make_session_factory(engine)() as session:
                await RewardModelRepository(session).set_active(RM_NAME, first.version)
                await session.commit()
        finally:
            await engine.dispose()
        reloaded = await client.post(f"/v1/reward-models/{RM_NAME}/reload")
        assert reloaded.status_code == 200 and reloaded.json()["swapped"][0]["current"] == scoring.version
        again = (await client.post("/classify", json=request)).json()["data"][0]["probs"]
        assert again == pytest.approx(before, abs=1e-5)
        # Nothing new to load: a second reload swaps nothing.
        assert (await client.post(f"/v1/reward-models/{RM_NAME}/reload")).json()["swapped"] == []
        missing = await client.post(f"/v1/reward-models/{RM_NAME}/activate", json={"version": 9})
        assert missing.status_code == 404


async def test_verls_discriminative_rm_client_scores_through_classify(
    store: str,
    judges_file: Path,
    artifact_dir: Path,
    tiny_base: Path,
    scoring: ScoringModel,
    records: list[LabelledRecord],
) -> None:
    """verl's own RewardLoopWorker (reward_model.enable, vllm engine) posts `model: <model_path>` to /classify and
    takes probs[-1]: the path resolves to the only reward_model profile and the reward is the model's."""
    pytest.importorskip("verl")
    import numpy as np
    import torch
    import verl as verl_package
    from hydra import compose, initialize_config_dir
    from verl import DataProto
    from verl.experimental.reward_loop import RewardLoopWorker

    from tests.support.live_server import live_server

    await _register(store, artifact_dir, active=True)
    record = records[5]
    chat = [{"role": role, "content": content} for role, content in record.conversation.messages]
    reply = record.conversation.response
    tokenizer = scoring.tokenizer
    ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    config_dir = Path(verl_package.__file__).parent / "trainer" / "config"
    with live_server(create_app(_settings(store, judges_file))) as url:
        overrides = [
            f"actor_rollout_ref.model.path={tiny_base}",
            "reward.reward_model.enable=true",
            f"reward.reward_model.model_path={tiny_base}",  # a path, as verl users configure it
            "reward.reward_model.rollout.name=vllm",
        ]
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            config = compose(config_name="ppo_trainer", overrides=overrides)
        worker = RewardLoopWorker(config, reward_router_address=url.removeprefix("http://"))
        data = DataProto.from_dict(
            tensors={
                "prompts": torch.zeros((1, 4), dtype=torch.long),
                "responses": torch.tensor([ids]),
                "attention_mask": torch.ones((1, 4 + len(ids)), dtype=torch.long),
            },
            non_tensors={"raw_prompt": np.array([chat], dtype=object)},
        )
        [output] = await worker.compute_score_batch(data)
        text = tokenizer.apply_chat_template([*chat, {"role": "assistant", "content": reply}], tokenize=False)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            direct = await client.post("/classify", json={"model": PROFILE, "input": text, "use_activation": False})
    assert output["reward_score"] == pytest.approx(direct.json()["data"][0]["probs"][-1], abs=1e-5)
    assert 0.0 <= output["reward_score"] <= 1.0
