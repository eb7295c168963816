"""The OpenRLHF reward_func.py, loaded by path and called in a thread as OpenRLHF does, against a running server."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import judge.adapters.openrlhf_reward_func as shipped
from tests.api.samples import PATIENT_ZH, REASONING_ZH, RESPONSE_ZH
from tests.api.test_score import PRMED_AXES
from tests.support.live_server import free_port
from tests.support.openai_server import OpenAIServer

PROMPT = (
    f"<|im_start|>system\n你是一名全科医生。<|im_end|>\n<|im_start|>user\n{PATIENT_ZH}<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def load_as_openrlhf_does(path: Path) -> ModuleType:
    """openrlhf/utils/agent.py: spec_from_file_location("reward_func", path), exec_module, take .reward_func."""
    spec = importlib.util.spec_from_file_location("reward_func", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def reward_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reward_server: str) -> ModuleType:
    # A copy elsewhere, as on a trainer machine without rubric-judge: the file must stand alone.
    copy = tmp_path / "reward_func.py"
    copy.write_text(Path(shipped.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("RJ_REWARD_URL", reward_server)
    monkeypatch.setenv("RJ_REWARD_RETRIES", "1")
    return load_as_openrlhf_does(copy)


async def test_one_query_per_call_in_a_worker_thread(reward_module: ModuleType, openai_server: OpenAIServer) -> None:
    def query(k: int) -> str:
        return f"{PROMPT}<think>\n{REASONING_ZH}\n</think>\n\n{RESPONSE_ZH}（第{k}版）<|im_end|><|endoftext|>"

    # OpenRLHF's _fetch_rewards_via_func: asyncio.to_thread(reward_func, [query], [prompt], [label]).
    answers = await asyncio.gather(
        *(asyncio.to_thread(reward_module.reward_func, [query(k)], [PROMPT], [None]) for k in range(4))
    )
    for answer in answers:
        assert set(answer) == {"rewards", "scores", "extra_logs"}
        assert len(answer["rewards"]) == 1 and 0.0 <= answer["scores"][0] <= 1.0
        assert answer["extra_logs"]["judge_failed"] == [0.0]
        assert {f"axis_{key}" for key in PRMED_AXES} <= set(answer["extra_logs"])
    assert openai_server.calls == 4
    assert openai_server.last_request.fenced_texts[:2] == ["你是一名全科医生。", PATIENT_ZH]


async def test_after_a_good_answer_an_unreachable_server_gives_the_fallback(
    reward_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = f"{PROMPT}{RESPONSE_ZH}<|im_end|>"
    good: dict[str, Any] = await asyncio.to_thread(reward_module.reward_func, [query], [PROMPT], ["参考答案"])
    monkeypatch.setenv("RJ_REWARD_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RJ_REWARD_FALLBACK", "-1")
    monkeypatch.setenv("RJ_REWARD_RETRIES", "0")
    down: dict[str, Any] = await asyncio.to_thread(reward_module.reward_func, [query], [PROMPT], ["参考答案"])
    assert down["rewards"] == [-1.0] and down["scores"] == [0.0]
    assert set(down["extra_logs"]) == set(good["extra_logs"]) and down["extra_logs"]["judge_failed"] == [1.0]


def test_a_server_never_reached_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "reward_func.py"
    copy.write_text(Path(shipped.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("RJ_REWARD_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RJ_REWARD_RETRIES", "1")
    module = load_as_openrlhf_does(copy)
    with pytest.raises(Exception, match="onnect"):
        module.reward_func(["q"], ["p"], [None])


def test_the_shipped_file_imports_nothing_of_rubric_judge() -> None:
    source = Path(shipped.__file__).read_text(encoding="utf-8")
    assert "import judge" not in source and "from judge" not in source
    assert "from api" not in source and "import rubrics" not in source
