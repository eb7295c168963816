"""Cost section 4: a /v1/rewards batch against a judge with stalled calls, with and without hedging."""

from __future__ import annotations

from typing import Any

import orjson

from bench.common import PATIENTS, timed_post
from bench.cost_samples import sample_body


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
    wall, r = await timed_post(api, "/v1/rewards", body, 300)
    data = r.json()
    return {
        "wall_s": wall,
        "rewarded": data["usage"]["rewarded"],
        "items": len(items),
        "hedges": data["usage"].get("hedges", 0),
        "calls": data["usage"]["calls"],
    }
