"""Cost section 5: 64 samples x 13 axes through /v1/score vs prometheus-eval 0.1.20 on the same stub."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench.common import timed_post
from rubrics.schema import Rubric

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


async def ours_64x13(api: str, samples: list[dict[str, Any]], rubric: str = "prmed") -> dict[str, Any]:
    """One ``/v1/score`` request for ``samples`` under ``rubric`` (prmed@2, the default, makes two calls a sample:
    its response-layer axes are judged on the response alone; prmed@1 one), the cache off."""
    body = orjson.dumps({"rubric": rubric, "judge": "bench", "samples": samples, "options": {"cache": False}})
    wall, r = await timed_post(api, "/v1/score", body, 300)
    results = r.json()["results"]
    scored = sum(1 for res in results for a in res["axes"].values() if a["score"] is not None)
    return {"wall_s": wall, "scores": scored, "calls": r.json()["usage"]["calls"]}
