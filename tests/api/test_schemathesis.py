"""A bounded schemathesis run against the live app: every operation, a fixed seed, a few dozen examples each.

Zero 500s and zero schema violations (status codes, content types and bodies as the OpenAPI document says). The
app runs under uvicorn on loopback, on the test database, with the loopback judge (docs/reliability.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from api.app import create_app
from judge.settings import Settings
from tests.support.live_server import live_server

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(create_app(settings.model_copy(update={"default_deadline_s": 5.0}))) as url:
        yield url


def test_every_operation_answers_within_its_schema_and_never_500(base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    strategy = st.sampled_from(operations).flatmap(lambda op: op.as_strategy())
    failures: list[str] = []
    seen: dict[str, int] = {}

    @seed(int(os.environ.get("RJ_SCHEMATHESIS_SEED", "20261201")))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION * len(operations),
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        label = f"{case.operation.method.upper()} {case.operation.path}"
        seen[label] = seen.get(label, 0) + 1
        try:
            response = case.call(base_url=base_url, timeout=60)
        except Exception as exc:  # a transport failure is a failure too, with its request
            failures.append(f"{label} -> no answer ({type(exc).__name__}: {exc}): {case.as_curl_command()}")
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as exc:  # every failure (an ExceptionGroup too) is collected, reported below
            failures.append(f"{label} -> {response.status_code}: {str(exc)[:1500]}")

    run()
    assert not failures, "\n\n".join(failures[:5])
    assert len(seen) >= len(operations) // 2
