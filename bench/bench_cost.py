"""Issue 13 benchmark: cost per verdict, side by side in one run.

1. Shared-prefix share of prompt tokens, same rubric (prmed@1, joint), different samples: the protocol-1 layout
   (nonce in the system message, format last; loaded from git at ``--baseline-commit``) vs this one. Measured by
   the loopback judge's prefix cache (blocks of 128 characters, 2 characters a token), in-process.
2. Prompt + completion tokens per verdict for joint / layered / isolated x rationale full / brief / none, through
   the OpenAI judge and the stub judge in another process (full rationales ``--rationale-chars`` long).
3. API process CPU per judged sample and per cached item (process CPU time of the uvicorn process, read with
   psutil, not wall time), and efficiency vs N·L/C: 1,024 fresh samples, L = 100 ms, C = 64, then the same
   batches as cache hits.
4. A 512-item /v1/rewards batch with 1 % of calls stalled 30 s: no stalls, stalls without hedging, stalls with
   hedging (``hedge_after_ms``).
5. 64 samples x 13 axes through /v1/score vs prometheus-eval 0.1.20 (``--prometheus-python``: a Python with it
   installed; skipped if none) on the same stub.

    python bench/bench_cost.py [--quick] [--prometheus-python /path/to/venv/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    PATIENTS,
    REDIS_URL,
    RESULTS,
    ROOT,
    free_port,
    print_table,
    process,
    scratch_database,
    scratch_prefix,
    wait_http,
)
from judge.backends.openai.judge import OpenAIJudge  # noqa: E402
from judge.backends.openai.prompts import render_prompt  # noqa: E402
from judge.profiles import JudgeProfile  # noqa: E402
from judge.samples import Sample, SampleIn, normalise  # noqa: E402
from rubrics.registry import RubricRegistry  # noqa: E402
from rubrics.schema import Rubric  # noqa: E402
from tests.support.openai_server import PrefixCache  # noqa: E402

BASELINE_COMMIT = "5ca26cc"


# --- samples ----------------------------------------------------------------------------------------------------


def sample_body(i: int, run: str = "") -> dict[str, Any]:
    """A Chinese sample of realistic size (about 600 tokens of conversation, CoT and response)."""
    patient = PATIENTS[i % len(PATIENTS)]
    reasoning = (
        f"1. 情绪感知：患者语气焦急、担心，反复追问（{run}{i}），需要先安抚情绪，再给出明确建议。\n"
        f"2. 扰动识别：“{patient[:12]}”属于口语化、方言化表达，夹杂情绪词，部分描述含糊，需要澄清部位、"
        "持续时间、诱因、伴随症状和既往史。\n"
        f"3. 话语纠正：患者（编号{i}）描述的是：{patient}。规范表述为：近期出现相关症状，程度明显，影响生活。\n"
        "4. 主诉提取：核心诉求是想知道症状是否危险、是否需要马上去医院、在家可以先做什么。\n"
        "5. 医学推理：首先排除急危重症（如急性冠脉综合征、肺栓塞、脑膜炎、严重感染等），结合年龄、起病方式、"
        "伴随症状判断；若出现胸痛加重、意识改变、高热不退、呼吸困难，应立即急诊；否则建议尽快门诊就诊，"
        f"完善血常规、心电图等检查，并观察症状变化。编号{run}{i}。"
    )
    response = (
        f"别太担心，我理解您现在很着急（{run}{i}）。根据您说的情况，建议这样做：\n"
        "1. 如果出现胸痛加重、出冷汗、意识不清、呼吸明显困难或高热不退，请立即拨打120或去最近的医院急诊。\n"
        "2. 如果症状暂时平稳，建议今天或明天尽快到医院相应科室就诊，做必要的检查，不要自行乱用药。\n"
        "3. 在家先注意休息，多喝温水，记录症状出现的时间和变化，就诊时告诉医生。\n"
        "有任何变化随时就医，祝您早日康复。"
    )
    return {
        "id": f"s{run}{i}",
        "messages": [{"role": "user", "content": f"{patient}（第{run}{i}号患者）"}],
        "reasoning": reasoning,
        "response": response,
    }


def make_samples(n: int, run: str = "") -> list[Sample]:
    return [normalise(SampleIn.model_validate(sample_body(i, run))) for i in range(n)]


# --- 1. shared prefix, old vs new layout ------------------------------------------------------------------------


def baseline_prompts(commit: str) -> types.ModuleType:
    """The prompt modules as they were at ``commit`` (protocol 1), loaded from git without touching the tree."""
    folder = Path(tempfile.mkdtemp(prefix="rj-baseline-prompts-"))
    for name in ("prompt_text", "prompts"):
        source = subprocess.run(
            ["git", "show", f"{commit}:judge/backends/openai/{name}.py"], cwd=ROOT, check=True, capture_output=True
        ).stdout.decode()
        source = source.replace("from judge.backends.openai.prompt_text import", "from rj_baseline_prompt_text import")
        (folder / f"rj_baseline_{name}.py").write_text(source, encoding="utf-8")
    sys.path.insert(0, str(folder))
    return importlib.import_module("rj_baseline_prompts")


def prefix_share(prompts: list[tuple[str, str]]) -> tuple[float, float]:
    """(shared share of prompt tokens over all but the first prompt, mean prompt tokens), as the loopback counts."""
    cache = PrefixCache()
    shared = total = 0
    sizes = []
    for i, (system, user) in enumerate(prompts):
        text = f"<|system|>{system}<|user|>{user}"
        tokens = len(f"{system}\n{user}") // 2
        hit = min(tokens, cache.seen_chars(text) // 2)
        sizes.append(tokens)
        if i:
            shared += hit
            total += tokens
    return shared / total, sum(sizes) / len(sizes)


def measure_layouts(rubric: Rubric, n: int, commit: str) -> dict[str, Any]:
    samples = make_samples(n, "layout")
    old = baseline_prompts(commit)
    old_prompts = [old.render_prompt(s, rubric, language="zh") for s in samples]
    new_prompts = [render_prompt(s, rubric, language="zh") for s in samples]
    old_share, old_size = prefix_share([(p.system, p.user) for p in old_prompts])
    new_share, new_size = prefix_share([(p.system, p.user) for p in new_prompts])
    return {"old_share": old_share, "old_tokens": old_size, "new_share": new_share, "new_tokens": new_size}


# --- 2. tokens per verdict per mode and rationale ---------------------------------------------------------------


async def tokens_per_verdict(rubric: Rubric, judge_url: str, n: int) -> list[dict[str, Any]]:
    rows = []
    for mode in ("joint", "layered", "isolated"):
        for rationale in ("full", "brief", "none"):
            profile = JudgeProfile.model_validate(
                {
                    "name": f"cost-{mode}-{rationale}",
                    "model": "stub",
                    "base_url": judge_url,
                    "mode": mode,
                    "rationale": rationale,
                    "concurrency": 64,
                    "timeout_s": 30,
                    "max_tokens": 4096,
                }
            )
            judge = OpenAIJudge(profile)
            try:
                samples = make_samples(n + 1, f"{mode}-{rationale}-")
                # One sample first, not counted: it fills the provider's cache, as the first call of a run does.
                await judge.score(samples[0], rubric)
                outcomes = await asyncio.gather(*(judge.score(s, rubric) for s in samples[1:]))
            finally:
                await judge.aclose()
            ok = sum(o.complete for o in outcomes)
            calls = sum(o.usage.calls for o in outcomes)
            prompt = sum(o.usage.prompt_tokens for o in outcomes)
            cached = sum(o.usage.cached_tokens for o in outcomes)
            completion = sum(o.usage.completion_tokens for o in outcomes)
            rows.append(
                {
                    "mode": mode,
                    "rationale": rationale,
                    "ok": ok,
                    "n": n,
                    "calls": calls / n,
                    "prompt": prompt / n,
                    "cached": cached / n,
                    "uncached": (prompt - cached) / n,
                    "completion": completion / n,
                }
            )
    return rows


# --- 3. API CPU per judged sample and per cached item -----------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (process CPU time, not wall time)."""
    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


async def post_all(client: httpx.AsyncClient, path: str, bodies: list[bytes]) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    responses = await asyncio.gather(
        *(client.post(path, content=b, headers={"content-type": "application/json"}) for b in bodies)
    )
    wall = time.perf_counter() - started
    for r in responses:
        r.raise_for_status()
    return wall, [orjson.loads(r.content) for r in responses]


async def api_cpu(
    api: str, pid: int, n: int, batch: int, latency_s: float, concurrency: int, rounds: int, run: str = "cpu"
) -> dict[str, Any]:
    bodies = [
        orjson.dumps(
            {
                "rubric": "prmed",
                "judge": "bench",
                "samples": [sample_body(i, run) for i in range(j, min(n, j + batch))],
                "options": {"rationale": False},
            }
        )
        for j in range(0, n, batch)
    ]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=api, timeout=300, limits=limits) as client:
        # Warm up code paths with other samples (first-call imports are not per-sample cost).
        warm = orjson.dumps(
            {"rubric": "prmed", "judge": "bench", "samples": [sample_body(i, f"warm-{run}") for i in range(64)]}
        )
        await post_all(client, "/v1/score", [warm, warm])
        spy = _py_spy(pid, "judged")
        before = cpu_seconds(pid)
        wall, payloads = await post_all(client, "/v1/score", bodies)
        judged_cpu = cpu_seconds(pid) - before
        ok = sum(1 for p in payloads for r in p["results"] if all(a["status"] == "ok" for a in r["axes"].values()))
        usage = [p["usage"] for p in payloads]
        await asyncio.sleep(1.0)  # let the group-commit writer finish (its CPU belongs to the judged path)
        judged_cpu = cpu_seconds(pid) - before
        _stop(spy)
        spy = _py_spy(pid, "cached")
        before = cpu_seconds(pid)
        hits = 0
        for _ in range(rounds):
            _, again = await post_all(client, "/v1/score", bodies)
            hits += sum(1 for p in again for r in p["results"] if r["cached"])
        cached_cpu = cpu_seconds(pid) - before
        _stop(spy)
    return {
        "wall_s": wall,
        "ideal_s": n * latency_s / concurrency,
        "efficiency": n * latency_s / concurrency / wall,
        "ok": ok,
        "judged_cpu_ms": judged_cpu / n * 1000,
        "cached_cpu_ms": cached_cpu / (rounds * n) * 1000,
        "hits": hits,
        "cached_items": rounds * n,
        "prompt_tokens": sum(u["prompt_tokens"] for u in usage),
        "cached_tokens": sum(u.get("cached_tokens", 0) for u in usage),
    }


@contextlib.contextmanager
def worker_process(tree: Path, env: dict[str, str], name: str) -> Iterator[subprocess.Popen[bytes]]:
    """A ``rubric-judge worker`` from the code in ``tree``, stopped at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "judge", "worker", "--name", name, "--max-chunks", "4"],
        cwd=tree,
        env={**os.environ, **env, "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # connected to Redis and PostgreSQL
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def worker_cpu(api: str, pid: int, n: int, run: str) -> dict[str, Any]:
    """Worker process CPU per judged sample: a filter job of ``n`` fresh samples, from upload to done."""
    body = b"\n".join(orjson.dumps(sample_body(i, run)) for i in range(n))
    async with httpx.AsyncClient(base_url=api, timeout=httpx.Timeout(60, read=None)) as client:
        before = cpu_seconds(pid)
        started = time.perf_counter()
        response = await client.post(
            "/v1/jobs",
            params={"judge": "bench", "options": '{"rationale": false}'},
            content=body,
            headers={"content-type": "application/x-ndjson"},
        )
        response.raise_for_status()
        job = response.json()
        while job["state"] not in ("done", "failed", "cancelled"):
            await asyncio.sleep(0.25)
            job = (await client.get(f"/v1/jobs/{job['id']}")).json()
        wall = time.perf_counter() - started
        spent = cpu_seconds(pid) - before
    return {"cpu_ms": spent / n * 1000, "wall_s": wall, "state": job["state"], "counts": job["counts"]}


PY_SPY = os.environ.get("RJ_BENCH_PY_SPY")  # a folder: profile the API process with py-spy into it


def _py_spy(pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """py-spy recording the API process (collapsed stacks in ``$RJ_BENCH_PY_SPY/<name>.txt``), when asked for."""
    if not PY_SPY:
        return None
    Path(PY_SPY).mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args = [spy, "record", "--pid", str(pid), "--rate", "250", "--nonblocking", "-o", f"{PY_SPY}/{name}.txt"]
    proc = subprocess.Popen([*args, "--format", "raw"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the measured work starts
    return proc


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


async def sdk_floor(judge_url: str, rubric: Rubric, n: int) -> dict[str, float]:
    """Process CPU per call of the SDK's raw post alone, and of the whole OpenAI judge (render, post, parse), in this
    process, with the stub in another: what every judged sample costs before the API adds anything."""
    import httpx2
    import openai

    client = openai.AsyncOpenAI(
        base_url=judge_url,
        api_key="EMPTY",
        max_retries=0,
        timeout=30,
        http_client=openai.DefaultAioHttpClient(
            limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64), timeout=30
        ),
    )
    samples = make_samples(n + 64, f"floor{time.time()}")
    payload = orjson.dumps(
        {"model": "stub", "messages": render_prompt(samples[0], rubric, language="zh").messages(), "max_tokens": 2048}
    )
    slots = asyncio.Semaphore(64)

    async def post() -> None:
        async with slots:
            raw = await client.post("/chat/completions", cast_to=httpx2.Response, content=payload)
            assert raw.status_code == 200

    try:
        await asyncio.gather(*(post() for _ in range(64)))
        started = time.process_time()
        await asyncio.gather(*(post() for _ in range(n)))
        sdk_ms = (time.process_time() - started) / n * 1000
    finally:
        await client.close()
    profile = JudgeProfile.model_validate(
        {"name": "floor", "model": "stub", "base_url": judge_url, "concurrency": 64, "timeout_s": 30}
    )
    judge = OpenAIJudge(profile)
    try:
        await asyncio.gather(*(judge.score(s, rubric) for s in samples[:64]))
        started = time.process_time()
        outcomes = await asyncio.gather(*(judge.score(s, rubric) for s in samples[64:]))
        judge_ms = (time.process_time() - started) / n * 1000
    finally:
        await judge.aclose()
    assert all(o.complete for o in outcomes)
    return {"sdk_post_ms": sdk_ms, "judge_ms": judge_ms}


# --- 4. a reward batch with stalled judge calls -----------------------------------------------------------------


async def reward_batch(api: str, judge: str, run: str, prompts: int, per_prompt: int) -> dict[str, Any]:
    items = [
        {
            "group_id": f"{run}-p{p}",
            "messages": [{"role": "user", "content": f"{PATIENTS[p % len(PATIENTS)]}（{run}{p}）"}],
            "completion": "<think>{}</think>{}".format(
                sample_body(p * per_prompt + k, run)["reasoning"], sample_body(k, run)["response"]
            ),
        }
        for p in range(prompts)
        for k in range(per_prompt)
    ]
    body = orjson.dumps({"rubric": "prmed", "judge": judge, "items": items, "cache": False, "rationale": "none"})
    async with httpx.AsyncClient(base_url=api, timeout=300) as client:
        started = time.perf_counter()
        r = await client.post("/v1/rewards", content=body, headers={"content-type": "application/json"})
        wall = time.perf_counter() - started
    r.raise_for_status()
    data = r.json()
    return {
        "wall_s": wall,
        "rewarded": data["usage"]["rewarded"],
        "items": len(items),
        "hedges": data["usage"].get("hedges", 0),
        "calls": data["usage"]["calls"],
    }


# --- 5. prometheus-eval on the same stub ------------------------------------------------------------------------

PROMETHEUS_SCRIPT = r"""
import json, sys, time
from prometheus_eval import PrometheusEval
from prometheus_eval.litellm import AsyncLiteLLM
from prometheus_eval.prompts import ABSOLUTE_PROMPT_WO_REF, SCORE_RUBRIC_TEMPLATE
job = json.load(open(sys.argv[1]))
model = AsyncLiteLLM(name="openai/stub", api_base=job["base_url"], requests_per_minute=job["rpm"],
                     batch_size=job["batch_size"])
judge = PrometheusEval(model=model, absolute_grade_template=ABSOLUTE_PROMPT_WO_REF)
rubrics = [SCORE_RUBRIC_TEMPLATE.format(**axis) for axis in job["axes"]]
n = len(job["instructions"])
# Its most favourable use: every (sample, axis) pair in one absolute_grade call, one rubric per pair.
started = time.perf_counter()
feedbacks, results = judge.absolute_grade(
    instructions=[i for i in job["instructions"] for _ in rubrics],
    responses=[r for r in job["responses"] for _ in rubrics],
    rubric=[rubric for _ in range(n) for rubric in rubrics],
    params={"max_tokens": 256},
)
wall = time.perf_counter() - started
print(json.dumps({"wall_s": wall, "scores": sum(1 for r in results if r is not None)}))
"""


def prometheus_eval_run(
    python: str, judge_url: str, rubric: Rubric, samples: list[dict[str, Any]], batch_size: int
) -> dict[str, Any]:
    axes = []
    for axis in rubric.axes:
        anchors = {f"score{level}_description": axis.anchors[level].zh for level in range(1, 6)}
        axes.append({"criteria": f"{axis.title.zh}：{axis.description.zh}", **anchors})
    job = {
        "base_url": judge_url,
        "rpm": 1_000_000,
        "batch_size": batch_size,
        "axes": axes,
        "instructions": [s["messages"][-1]["content"] for s in samples],
        "responses": [f"<think>{s['reasoning']}</think>{s['response']}" for s in samples],
    }
    with tempfile.TemporaryDirectory() as tmp:
        job_path, script = Path(tmp) / "job.json", Path(tmp) / "run_prometheus.py"
        job_path.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
        script.write_text(PROMETHEUS_SCRIPT, encoding="utf-8")
        env = {**os.environ, "OPENAI_API_KEY": "EMPTY", "LITELLM_LOG": "ERROR"}
        done = subprocess.run([python, str(script), str(job_path)], capture_output=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-2000:])
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


async def ours_64x13(api: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    body = orjson.dumps({"rubric": "prmed", "judge": "bench", "samples": samples, "options": {"cache": False}})
    async with httpx.AsyncClient(base_url=api, timeout=300) as client:
        started = time.perf_counter()
        r = await client.post("/v1/score", content=body, headers={"content-type": "application/json"})
        wall = time.perf_counter() - started
    r.raise_for_status()
    results = r.json()["results"]
    scored = sum(1 for res in results for a in res["axes"].values() if a["score"] is not None)
    return {"wall_s": wall, "scores": scored}


# --- wiring -----------------------------------------------------------------------------------------------------


def stub(port: int, latency_ms: float, *extra: str) -> Any:
    args = [sys.executable, "-m", "tests.support.openai_server", "--port", str(port), "--latency-ms", str(latency_ms)]
    return process([*args, *extra], ready_url=f"http://127.0.0.1:{port}/v1/models")


@contextlib.contextmanager
def api_process(tree: Path, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``rubric-judge serve`` from the code in ``tree`` (this checkout, or an exported baseline), stopped at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "judge", "serve", "--port", str(port)],
        cwd=tree,
        env={**os.environ, **env, "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def judges_yaml(path: Path, judges: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"judges": judges}), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the script)")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT)
    parser.add_argument(
        "--baseline-tree", default=None, help="an exported tree of the baseline commit: its API's CPU, side by side"
    )
    parser.add_argument("--rationale-chars", type=int, default=80, help="full rationale length at the stub")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--hedge-after-ms", type=float, default=400.0)
    parser.add_argument("--prometheus-python", default=None, help="a Python with prometheus-eval==0.1.20")
    parser.add_argument("--skip", default="", help="sections to skip: layout,tokens,floor,cpu,worker,hedge,prometheus")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    quick = args.quick
    rubric = RubricRegistry().resolve("prmed")
    out: dict[str, Any] = {"args": vars(args)}

    if "layout" not in skip:
        layout = out["layout"] = measure_layouts(rubric, 16 if quick else 64, args.baseline_commit)
        print_table(
            "1. shared-prefix share of prompt tokens, prmed@1 joint, different samples (loopback cache)",
            [
                (f"protocol 1 layout ({args.baseline_commit})", f"{layout['old_share']:.1%}", "", None),
                ("this layout", f"{layout['new_share']:.1%}", ">= 75 %", layout["new_share"] >= 0.75),
                (
                    "prompt tokens (chars/2): protocol 1 / this",
                    f"{layout['old_tokens']:.0f} / {layout['new_tokens']:.0f}",
                    "",
                    None,
                ),
            ],
        )

    if "tokens" not in skip:
        port = free_port()
        with stub(port, 0, "--rationale-chars", str(args.rationale_chars)):
            rows = out["tokens"] = asyncio.run(
                tokens_per_verdict(rubric, f"http://127.0.0.1:{port}/v1", 8 if quick else 32)
            )
        table = []
        for r in rows:
            goal, met = "", None
            if r["mode"] == "joint" and r["rationale"] == "none":
                full = next(x for x in rows if x["mode"] == "joint" and x["rationale"] == "full")
                goal, met = (
                    "prompt <= full's, completion <= 150",
                    r["prompt"] <= full["prompt"] and r["completion"] <= 150,
                )
            table.append(
                (
                    f"{r['mode']} / {r['rationale']} ({r['ok']}/{r['n']} ok, {r['calls']:.0f} calls)",
                    f"{r['prompt']:.0f} (cached {r['cached']:.0f}, uncached {r['uncached']:.0f})"
                    f" + {r['completion']:.0f}",
                    goal,
                    met,
                )
            )
        print_table("2. prompt + completion tokens per verdict (chars/2), stub judge in another process", table)

    if "floor" not in skip:
        port = free_port()
        with stub(port, 0):
            floor = out["floor"] = asyncio.run(sdk_floor(f"http://127.0.0.1:{port}/v1", rubric, 500 if quick else 2000))
        print_table(
            "3a. process CPU per call in this process, stub in another (the floor under the API's figure)",
            [
                ("OpenAI SDK raw post alone (ms)", f"{floor['sdk_post_ms']:.3f}", "", None),
                ("OpenAI judge: render + post + parse (ms)", f"{floor['judge_ms']:.3f}", "", None),
            ],
        )

    needs_api = {"cpu", "hedge", "prometheus"} - skip
    if needs_api:
        ports = {name: free_port() for name in ("plain", "stall", "api")}
        prefix = scratch_prefix("cost")
        n = 256 if quick else 1024
        with (
            tempfile.TemporaryDirectory() as tmp,
            scratch_database() as db_url,
            stub(ports["plain"], args.latency_ms),
            stub(ports["stall"], args.latency_ms, "--stall-rate", "0.01", "--stall-s", "30"),
        ):
            base = {
                "backend": "openai",
                "model": "stub",
                "concurrency": args.concurrency,
                "timeout_s": 60,
                "max_retries": 2,
            }
            plain_url = f"http://127.0.0.1:{ports['plain']}/v1"
            stall_url = f"http://127.0.0.1:{ports['stall']}/v1"
            judges = judges_yaml(
                Path(tmp) / "judges.yaml",
                [
                    {"name": "bench", "base_url": plain_url, **base},
                    {"name": "stalls", "base_url": stall_url, **base},
                    {"name": "stalls-hedged", "base_url": stall_url, "hedge_after_ms": args.hedge_after_ms, **base},
                ],
            )
            env = {
                "RJ_DATABASE_URL": db_url,
                "RJ_REDIS_URL": REDIS_URL,
                "RJ_REDIS_PREFIX": prefix,
                "RJ_JUDGES_FILE": str(judges),
                "RJ_LOG_LEVEL": "WARNING",
                "RJ_REWARD_DEADLINE_S": "600",
            }
            old: dict[str, Any] | None = None
            if args.baseline_tree and "cpu" not in skip:
                # The same measurement on the protocol-1 code (an exported tree of --baseline-commit), same stub.
                old_port = free_port()
                old_env = {
                    **env,
                    "RJ_REDIS_PREFIX": scratch_prefix("cost-baseline"),
                    "RJ_JUDGES_FILE": str(
                        judges_yaml(Path(tmp) / "judges-old.yaml", [{"name": "bench", "base_url": plain_url, **base}])
                    ),
                }
                with api_process(Path(args.baseline_tree), old_port, old_env) as old_proc:
                    old = out["cpu_baseline"] = asyncio.run(
                        api_cpu(
                            f"http://127.0.0.1:{old_port}", old_proc.pid, n, 128, args.latency_ms / 1000,
                            args.concurrency, 3 if quick else 10, run="cpu-old",
                        )
                    )  # fmt: skip
                    if "worker" not in skip:
                        with worker_process(Path(args.baseline_tree), old_env, "cost-old-w1") as old_worker:
                            old["worker"] = asyncio.run(
                                worker_cpu(f"http://127.0.0.1:{old_port}", old_worker.pid, n, "worker-old")
                            )
            api = f"http://127.0.0.1:{ports['api']}"
            with api_process(ROOT, ports["api"], env) as proc:
                if "cpu" not in skip:
                    cpu = out["cpu"] = asyncio.run(
                        api_cpu(api, proc.pid, n, 128, args.latency_ms / 1000, args.concurrency, 3 if quick else 10)
                    )
                    if "worker" not in skip:
                        with worker_process(ROOT, env, "cost-w1") as worker:
                            cpu["worker"] = asyncio.run(worker_cpu(api, worker.pid, n, "worker"))
                    if old is not None:
                        for key in ("judged_cpu_ms", "cached_cpu_ms", "efficiency"):
                            cpu[f"{key}_text"] = f"{cpu[key]:.3f} (protocol 1: {old[key]:.3f})"
                    worker_text = ""
                    if "worker" in cpu:
                        worker_text = f"{cpu['worker']['cpu_ms']:.3f}"
                        if old is not None and "worker" in old:
                            worker_text += f" (protocol 1: {old['worker']['cpu_ms']:.3f})"
                    print_table(
                        f"3. API process CPU (psutil user+system), N={n}, L={args.latency_ms:.0f} ms, "
                        f"C={args.concurrency}, PostgreSQL + Redis",
                        [
                            (
                                "CPU per judged sample (ms)",
                                cpu.get("judged_cpu_ms_text", f"{cpu['judged_cpu_ms']:.3f}"),
                                "<= 0.8",
                                cpu["judged_cpu_ms"] <= 0.8,
                            ),
                            (
                                "CPU per cached item (ms)",
                                cpu.get("cached_cpu_ms_text", f"{cpu['cached_cpu_ms']:.4f}"),
                                "<= 0.1",
                                cpu["cached_cpu_ms"] <= 0.1,
                            ),
                            (
                                "efficiency N·L/C / wall",
                                cpu.get("efficiency_text", f"{cpu['efficiency']:.3f}") + f" ({cpu['wall_s']:.2f} s)",
                                ">= 0.95",
                                cpu["efficiency"] >= 0.95,
                            ),
                            ("items with every axis ok", f"{cpu['ok']}/{n}", "all", cpu["ok"] == n),
                            (
                                "worker CPU per judged sample (ms), filter job",
                                worker_text or "skipped",
                                "<= 0.8",
                                cpu["worker"]["cpu_ms"] <= 0.8 if "worker" in cpu else None,
                            ),
                            (
                                "cached share of prompt tokens (usage)",
                                f"{cpu['cached_tokens'] / max(1, cpu['prompt_tokens']):.1%}",
                                ">= 75 %",
                                cpu["cached_tokens"] >= 0.75 * cpu["prompt_tokens"],
                            ),
                        ],
                    )
                if "hedge" not in skip:
                    per = 8
                    groups = 64 if not quick else 16
                    runs = {
                        "no stalls": asyncio.run(reward_batch(api, "bench", "h0", groups, per)),
                        "1 % stalled 30 s, no hedging": asyncio.run(reward_batch(api, "stalls", "h1", groups, per)),
                        f"1 % stalled 30 s, hedge_after_ms={args.hedge_after_ms:.0f}": asyncio.run(
                            reward_batch(api, "stalls-hedged", "h2", groups, per)
                        ),
                    }
                    out["hedge"] = runs
                    clean = runs["no stalls"]["wall_s"]
                    rows_h = []
                    for name, r in runs.items():
                        ratio = r["wall_s"] / clean
                        goal, met = ("<= 2x", ratio <= 2) if "hedge_after" in name else ("", None)
                        rows_h.append(
                            (
                                f"{name} ({r['rewarded']}/{r['items']} rewarded, {r['hedges']} hedges)",
                                f"{r['wall_s']:.2f} s ({ratio:.1f}x)",
                                goal,
                                met,
                            )
                        )
                    print_table(
                        f"4. /v1/rewards, {groups * per} items, L={args.latency_ms:.0f} ms, C={args.concurrency}",
                        rows_h,
                    )
                if "prometheus" not in skip:
                    samples = [sample_body(i, "pe") for i in range(64)]
                    ours = out["ours_64x13"] = asyncio.run(ours_64x13(api, samples))
                    rows_p = [
                        (
                            "rubric-judge /v1/score (joint, 64 calls)",
                            f"{ours['wall_s']:.2f} s, {ours['scores']} scores",
                            "",
                            None,
                        )
                    ]
                    if args.prometheus_python:
                        try:
                            theirs = out["prometheus_eval"] = prometheus_eval_run(
                                args.prometheus_python, plain_url, rubric, samples, args.concurrency
                            )
                            speedup = theirs["wall_s"] / ours["wall_s"]
                            rows_p.append(
                                (
                                    "prometheus-eval 0.1.20 absolute_grade (one call per sample and axis)",
                                    f"{theirs['wall_s']:.2f} s, {theirs['scores']} scores",
                                    "",
                                    None,
                                )
                            )
                            rows_p.append(("speed-up", f"{speedup:.1f}x", ">= 30x", speedup >= 30))
                        except Exception as exc:  # reported, not hidden
                            rows_p.append(("prometheus-eval 0.1.20", f"failed: {exc}"[:300], "", None))
                    else:
                        rows_p.append(("prometheus-eval 0.1.20", "skipped: no --prometheus-python", "", None))
                    print_table("5. 64 samples x 13 axes, same stub (L as above)", rows_p)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cost.json").write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
