"""RJ_LOG_FORMAT=json: one JSON object a line with the request id; per-call client INFO lines turned down."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from judge.logs import configure_logging, request_id
from judge.settings import Settings


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "openai")}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


def test_json_lines_carry_the_request_id(restore_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json", log_level="INFO", _env_file=None))  # type: ignore[call-arg]
    token = request_id.set("req-七")
    try:
        logging.getLogger("judge.test").warning("评分失败 %d 次", 3)
        # The OpenAI SDK's transport logs every call at INFO: not any more.
        logging.getLogger("httpx").info('HTTP Request: POST http://judge/v1/chat/completions "HTTP/1.1 200 OK"')
    finally:
        request_id.reset(token)
    logging.getLogger("judge.test").info("无请求")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == ["评分失败 3 次", "无请求"]
    assert lines[0]["request_id"] == "req-七" and lines[0]["level"] == "WARNING" and lines[0]["logger"] == "judge.test"
    assert "request_id" not in lines[1] and lines[1]["time"].endswith("Z")


def test_text_lines_name_the_request(restore_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_level="INFO", _env_file=None))  # type: ignore[call-arg]
    token = request_id.set("abc")
    try:
        logging.getLogger("judge.test").info("hello")
    finally:
        request_id.reset(token)
    assert capsys.readouterr().err.strip().endswith("INFO judge.test [abc]: hello")
