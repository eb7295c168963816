"""The app a scenario runs against (a fresh SQLite store per client, the loopback judges), the request helpers,
and the registry: ``scenario`` adds a run to ``SCENARIOS`` in the order the family modules are imported."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from api.app import create_app
from judge.settings import Settings
from judge.store.migrate import upgrade
from tests.integrity.scenarios.common import COT, PATIENT, naive_verdict
from tests.support.openai_server import OpenAIServer


@dataclass
class Context:
    server: OpenAIServer
    folder: Path

    @asynccontextmanager
    async def client(
        self, *, on_runtime: Callable[[Any], None] | None = None, **settings: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        """The app with the loopback judges ``loop``, ``loop-lp`` (logprobs), ``loop-raw`` (no structured output)
        and ``loop-group``; each call gets a fresh SQLite store. ``on_runtime`` sees the started runtime (to
        install a scripted reward model)."""
        base = {"backend": "openai", "model": "m", "base_url": self.server.url, "timeout_s": 10, "max_retries": 0}
        judges = [
            {"name": "loop", **base},
            {"name": "loop-lp", **base, "logprobs": True, "top_logprobs": 5},
            {"name": "loop-raw", **base, "structured_output": "none"},
            {"name": "loop-group", **base, "mode": "group", "max_tokens": 8000},
        ]
        judges_file = self.folder / "judges.yml.txt"
        judges_file.write_text(yaml.safe_dump({"judges": judges}), encoding="utf-8")
        db = self.folder / "db" / f"rj-{len(list((self.folder / 'db').glob('rj-*.db')))}.db"
        db.parent.mkdir(exist_ok=True)
        url = f"sqlite+aiosqlite:///{db}"
        await upgrade(url)
        values: dict[str, Any] = {
            "database_url": url,
            "judges_file": judges_file,
            "reward_judge": "loop",
            "rubrics_dir": self.folder / "rubrics",
            **settings,
        }
        app = create_app(Settings(_env_file=None, **values))  # type: ignore[call-arg]
        async with app.router.lifespan_context(app):
            if on_runtime is not None:
                on_runtime(app.state.runtime)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://rj.test", timeout=60) as client:
                yield client


@asynccontextmanager
async def context() -> AsyncIterator[Context]:
    with OpenAIServer() as server, tempfile.TemporaryDirectory() as folder:
        server.default = naive_verdict
        (Path(folder) / "rubrics").mkdir()
        _write_length_rubric(Path(folder) / "rubrics")
        yield Context(server, Path(folder))


def _write_length_rubric(folder: Path) -> None:
    """prmed@1's axes under another name, with a 1,000-character free length (the issue's reproduction)."""
    # parents[3]: the repository root, from tests/integrity/scenarios/harness.py.
    source = Path(__file__).resolve().parents[3] / "rubrics" / "builtin" / "prmed-1.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["name"] = "prmed-len"
    data["reward_policy"]["length_penalty"] = {"free_chars": 1000, "per_1k_chars": 0.05, "max_penalty": 0.5}
    (folder / "prmed-len.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def messages(patient: str = PATIENT) -> list[dict[str, str]]:
    return [{"role": "system", "content": "你是一名耐心的全科医生。"}, {"role": "user", "content": patient}]


async def rewards(client: httpx.AsyncClient, *items: dict[str, Any], **request: Any) -> list[dict[str, Any]]:
    body = {"judge": "loop", "items": list(items), **request}
    response = await client.post("/v1/rewards", json=body)
    assert response.status_code == 200, response.text
    out: list[dict[str, Any]] = response.json()["items"]
    return out


def value(item: dict[str, Any]) -> float:
    """An item's reward as a trainer uses it: a failed item gets the fallback 0 (as /get_reward gives)."""
    reward = item.get("reward")
    return float(reward) if reward is not None and item.get("status") == "ok" else 0.0


def completion(response: str, cot: str = COT) -> str:
    return f"<think>{cot}</think>{response}"


@dataclass(frozen=True)
class Outcome:
    """Rewards of one exploit: its honest baseline and the exploit, and what is measured (reward or pass)."""

    baseline: float
    exploit: float
    measure: str = "reward"


Scenario = Callable[[Context], Awaitable[Outcome]]
SCENARIOS: dict[str, tuple[str, Scenario]] = {}


def scenario(name: str, title: str) -> Callable[[Scenario], Scenario]:
    def register(run: Scenario) -> Scenario:
        SCENARIOS[name] = (title, run)
        return run

    return register
