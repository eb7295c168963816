"""The verl adapter driven by verl's own classes (verl 0.9, CPU, no vllm): the config the README documents, loaded
by verl from its shipped trainer config; the reward loop's worker and manager; the legacy naive, batch and prime
managers. Skipped when verl is not installed (the ``trainers`` extra)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl")
np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

import verl as verl_package  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from verl import DataProto  # noqa: E402

from judge.adapters import verl as adapter  # noqa: E402
from reward_model.tiny import train_tiny_tokenizer  # noqa: E402
from tests.api.samples import PATIENT_ZH, REASONING_ZH, RESPONSE_ZH  # noqa: E402
from tests.judge.adapters.test_verl import KEYS  # noqa: E402  (the keys every verl answer carries)
from tests.support.openai_server import OpenAIServer, Verdict  # noqa: E402

PROMPT_LEN, RESPONSE_LEN = 16, 640


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The policy's tokenizer as verl loads it (``actor_rollout_ref.model.path``): a tiny one trained here, with
    ``<think>``/``</think>`` as plain added tokens as in Qwen3 (verl decodes with ``skip_special_tokens=True``)."""
    from tokenizers import AddedToken

    path = tmp_path_factory.mktemp("verl-policy")
    tokenizer = train_tiny_tokenizer()
    tags = [AddedToken(tag, special=False, normalized=False) for tag in ("<think>", "</think>")]
    tokenizer.backend_tokenizer.add_tokens(tags)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def trainer_config(overrides: list[str]) -> DictConfig:
    """verl's shipped ``ppo_trainer`` config with command-line overrides, as ``main_ppo`` composes it."""
    config_dir = Path(verl_package.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def solution(k: int) -> str:
    return f"<think>{REASONING_ZH}</think>{RESPONSE_ZH}（第{k}版）"


def batch(tokenizer: Any, extra_infos: list[Any], *, ground_truth: str = "请立即拨打120。") -> DataProto:
    """A rollout batch as verl's trainer hands it to reward managers: left-padded prompts, right-padded responses."""
    pad = tokenizer.pad_token_id
    n = len(extra_infos)
    prompts = torch.full((n, PROMPT_LEN), pad, dtype=torch.long)
    responses = torch.full((n, RESPONSE_LEN), pad, dtype=torch.long)
    mask = torch.zeros((n, PROMPT_LEN + RESPONSE_LEN), dtype=torch.long)
    for i in range(n):
        prompt_ids = tokenizer(PATIENT_ZH[:8], add_special_tokens=False)["input_ids"][:PROMPT_LEN]
        prompts[i, PROMPT_LEN - len(prompt_ids) :] = torch.tensor(prompt_ids)
        mask[i, PROMPT_LEN - len(prompt_ids) : PROMPT_LEN] = 1
        ids = tokenizer(solution(i), add_special_tokens=False)["input_ids"]
        assert len(ids) <= RESPONSE_LEN
        responses[i, : len(ids)] = torch.tensor(ids)
        mask[i, PROMPT_LEN : PROMPT_LEN + len(ids)] = 1
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": mask},
        non_tensors={
            "data_source": np.array(["prmed"] * n, dtype=object),
            "reward_model": np.array([{"ground_truth": ground_truth, "style": "model"}] * n, dtype=object),
            "extra_info": np.array([dict(e) if isinstance(e, dict) else e for e in extra_infos], dtype=object),
        },
    )


def dialogue() -> dict[str, Any]:
    """``extra_info`` as the README's preprocessing writes it: the conversation under ``messages``."""
    return {"index": 0, "messages": [{"role": "user", "content": PATIENT_ZH}]}


def documented_overrides(server: str, tokenizer_dir: Path, name: str = "compute_score") -> list[str]:
    return [
        f"actor_rollout_ref.model.path={tokenizer_dir}",
        "reward.custom_reward_function.path=pkg://judge.adapters.verl",
        f"reward.custom_reward_function.name={name}",
        f"+reward.custom_reward_function.reward_kwargs.base_url={server}",
        "+reward.custom_reward_function.reward_kwargs.judge=loop",
    ]


async def test_the_reward_loop_worker_scores_with_the_documented_config(
    reward_server: str, openai_server: OpenAIServer, tokenizer: Any, tokenizer_dir: Path
) -> None:
    from verl.experimental.reward_loop import RewardLoopWorker

    worker = RewardLoopWorker(trainer_config(documented_overrides(reward_server, tokenizer_dir)))
    outputs = await worker.compute_score_batch(batch(tokenizer, [dialogue(), dialogue()]))
    assert len(outputs) == 2
    for output in outputs:
        info = output["reward_extra_info"]
        assert set(info) == KEYS and info["judge_failed"] == 0.0
        assert output["reward_score"] == info["score"] and 0.0 <= info["score"] <= 1.0
    # The judge saw the patient's words, the CoT and the response decoded by verl, and the ground truth.
    fenced = openai_server.last_request.fenced_texts
    assert fenced[0] == PATIENT_ZH and fenced[1] == REASONING_ZH and fenced[-1] == "请立即拨打120。"


async def test_a_sample_without_the_conversation_fails_loudly_unless_opted_in(
    reward_server: str, openai_server: OpenAIServer, tokenizer: Any, tokenizer_dir: Path
) -> None:
    from verl.experimental.reward_loop import RewardLoopWorker

    worker = RewardLoopWorker(trainer_config(documented_overrides(reward_server, tokenizer_dir)))
    with pytest.raises(adapter.MissingConversation, match=r"extra_info=\{\"messages\": prompt\}"):
        await worker.compute_score_batch(batch(tokenizer, [{"index": 0}]))
    assert openai_server.calls == 0
    opted = documented_overrides(reward_server, tokenizer_dir)
    opted.append("+reward.custom_reward_function.reward_kwargs.allow_missing_conversation=true")
    worker = RewardLoopWorker(trainer_config(opted))
    [output] = await worker.compute_score_batch(batch(tokenizer, [{"index": 0}]))
    assert output["reward_extra_info"]["judge_failed"] == 1.0 and output["reward_score"] == 0.0
    assert openai_server.calls == 0


async def test_a_top_level_custom_reward_function_is_ignored_by_verl(
    reward_server: str, tokenizer: Any, tokenizer_dir: Path
) -> None:
    """Why the README says ``reward.custom_reward_function``: verl 0.9's main_ppo never reads the top-level key."""
    from verl.experimental.reward_loop import RewardLoopWorker

    config = trainer_config(
        [
            f"actor_rollout_ref.model.path={tokenizer_dir}",
            "custom_reward_function.path=pkg://judge.adapters.verl",
            "custom_reward_function.name=compute_score",
        ]
    )
    worker = RewardLoopWorker(config)
    with pytest.raises(NotImplementedError, match="prmed"):
        await worker.compute_score_batch(batch(tokenizer, [dialogue()]))


def test_the_legacy_naive_manager_with_the_sync_variant(reward_server: str, tokenizer: Any) -> None:
    from verl.workers.reward_manager import NaiveRewardManager

    score = functools.partial(adapter.compute_score_sync, base_url=reward_server, judge="loop")
    manager = NaiveRewardManager(tokenizer, num_examine=0, compute_score=score)
    data = batch(tokenizer, [dialogue(), dialogue(), dialogue()])
    result = manager(data, return_dict=True)
    rewards = result["reward_tensor"].sum(dim=-1).tolist()
    assert rewards == pytest.approx(result["reward_extra_info"]["score"]) and len(rewards) == 3
    assert set(result["reward_extra_info"]) == KEYS
    assert result["reward_extra_info"]["judge_failed"] == [0.0, 0.0, 0.0]
    # The reward sits on the last response token, where verl's advantage estimators read it.
    last = data.batch["attention_mask"][:, PROMPT_LEN:].sum(dim=-1) - 1
    assert result["reward_tensor"][torch.arange(3), last].tolist() == pytest.approx(rewards)


def test_the_batch_manager_sends_one_request(reward_server: str, tokenizer: Any, openai_server: OpenAIServer) -> None:
    from verl.workers.reward_manager import BatchRewardManager

    manager = BatchRewardManager(
        tokenizer, num_examine=0, compute_score=adapter.compute_score_batch, base_url=reward_server, judge="loop"
    )
    result = manager(batch(tokenizer, [dialogue()] * 4), return_dict=True)
    assert len(result["reward_extra_info"]["score"]) == 4
    assert result["reward_extra_info"]["judge_failed"] == [0.0] * 4
    assert openai_server.calls == 4  # four judge calls behind one /v1/rewards request


def test_the_prime_manager_gets_floats_from_worker_processes(
    reward_server: str, openai_server: OpenAIServer, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verl.workers.reward_manager import PrimeRewardManager

    openai_server.default = lambda request: Verdict(scores=5)

    # prime passes no reward_kwargs: the server and judge come from the environment of its worker processes.
    monkeypatch.setenv("RJ_REWARD_URL", reward_server)
    monkeypatch.setenv("RJ_REWARD_JUDGE", "loop")
    manager = PrimeRewardManager(tokenizer, num_examine=0, compute_score=adapter.compute_score_scalar)
    data = batch(tokenizer, [dialogue(), dialogue()])
    scores = manager.verify(data)
    # prime turns any failure into 0.0 silently: only 1.0 (every axis 5) shows the calls really went through.
    assert scores == [1.0, 1.0]
    assert data.batch["acc"].tolist() == pytest.approx(scores)
