"""The loopback judge as a process of its own (benchmarks): ``python -m tests.support.openai_server --port P``.

Options travel to the app through ``LOOPBACK_OPENAI_*`` variables, so that ``--workers`` processes (each
building the app with :func:`create_app`) share them."""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn
from starlette.applications import Starlette

from tests.support.loopback_server import OpenAIServer

_LATENCY_ENV = "LOOPBACK_OPENAI_LATENCY_MS"
_TIE_RATE_ENV = "LOOPBACK_OPENAI_TIE_RATE"
_VARY_CONFIDENCE_ENV = "LOOPBACK_OPENAI_VARY_CONFIDENCE"
_USAGE_STYLE_ENV = "LOOPBACK_OPENAI_USAGE_STYLE"
_RATIONALE_CHARS_ENV = "LOOPBACK_OPENAI_RATIONALE_CHARS"
_STALL_RATE_ENV = "LOOPBACK_OPENAI_STALL_RATE"
_STALL_S_ENV = "LOOPBACK_OPENAI_STALL_S"
_TOKENIZER_ENV = "LOOPBACK_OPENAI_TOKENIZER"


def _options_from_env() -> dict[str, Any]:
    tie_rate = os.environ.get(_TIE_RATE_ENV)
    rationale_chars = os.environ.get(_RATIONALE_CHARS_ENV)
    return {
        "latency_ms": float(os.environ.get(_LATENCY_ENV, "0")),
        "tie_rate": float(tie_rate) if tie_rate else None,
        "vary_confidence": os.environ.get(_VARY_CONFIDENCE_ENV) == "1",
        "usage_style": os.environ.get(_USAGE_STYLE_ENV, "openai"),
        "rationale_chars": int(rationale_chars) if rationale_chars else None,
        "stall_rate": float(os.environ.get(_STALL_RATE_ENV, "0")),
        "stall_s": float(os.environ.get(_STALL_S_ENV, "30")),
        "tokenizer": os.environ.get(_TOKENIZER_ENV) or None,
    }


def create_app() -> Starlette:
    """App factory for multi-worker runs (``--workers``): options from ``LOOPBACK_OPENAI_*`` variables."""
    return OpenAIServer(keep_requests=16, **_options_from_env()).app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback OpenAI-compatible judge server (tests, benchmarks)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument("--workers", type=int, default=1, help="server processes sharing the port")
    parser.add_argument("--tie-rate", type=float, default=None, help="fraction of samples scored as their prompt")
    parser.add_argument("--vary-confidence", action="store_true", help="per-sample top-logprob mass of scores")
    parser.add_argument("--usage-style", choices=["openai", "deepseek"], default="openai", help="cached-token fields")
    parser.add_argument("--rationale-chars", type=int, default=None, help="length of a full rationale")
    parser.add_argument("--stall-rate", type=float, default=0.0, help="fraction of calls that stall")
    parser.add_argument("--stall-s", type=float, default=30.0, help="how long a stalled call stalls")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer.json to count tokens with (not chars / 2)")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"host": args.host, "port": args.port, "access_log": False, "backlog": 4096}
    os.environ[_LATENCY_ENV] = str(args.latency_ms)
    if args.tie_rate is not None:
        os.environ[_TIE_RATE_ENV] = str(args.tie_rate)
    os.environ[_VARY_CONFIDENCE_ENV] = "1" if args.vary_confidence else "0"
    os.environ[_USAGE_STYLE_ENV] = args.usage_style
    if args.rationale_chars is not None:
        os.environ[_RATIONALE_CHARS_ENV] = str(args.rationale_chars)
    os.environ[_STALL_RATE_ENV] = str(args.stall_rate)
    os.environ[_STALL_S_ENV] = str(args.stall_s)
    if args.tokenizer:
        os.environ[_TOKENIZER_ENV] = args.tokenizer
    if args.workers > 1:
        uvicorn.run("tests.support.loopback_cli:create_app", factory=True, workers=args.workers, **options)
        return
    uvicorn.run(OpenAIServer(keep_requests=16, **_options_from_env()).app, **options)
