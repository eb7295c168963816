"""The container files: docker-compose.yml parses and wires the stack; the Dockerfile keeps its promises.

Docker itself is not run here; these checks catch the edits that would break a deployment silently.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_compose_services_and_images() -> None:
    services = _compose()["services"]
    assert set(services) == {"api", "migrate", "postgres", "redis", "worker"}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["api"]["image"] == services["migrate"]["image"]
    assert services["api"]["build"]["context"] == "."


def test_api_waits_for_a_successful_migration() -> None:
    services = _compose()["services"]
    assert services["migrate"]["command"] == ["rubric-judge", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    depends = services["api"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]


def test_api_and_migrate_share_settings() -> None:
    services = _compose()["services"]
    env = services["api"]["environment"]
    assert env == services["migrate"]["environment"]
    assert env["RJ_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["RJ_DATABASE_URL"]
    assert env["RJ_REDIS_URL"].startswith("redis://redis:6379")
    # Secrets are passed through from the shell, never written into the file.
    assert env["OPENAI_API_KEY"] is None
    assert env["DEEPSEEK_API_KEY"] is None


def test_workers_share_the_api_settings_and_wait_for_the_migration() -> None:
    services = _compose()["services"]
    worker = services["worker"]
    assert worker["command"] == ["rubric-judge", "worker"]
    assert worker["image"] == services["api"]["image"]
    assert worker["environment"] == services["api"]["environment"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["healthcheck"] == {"disable": True}


def test_judges_file_is_mounted_from_examples() -> None:
    api = _compose()["services"]["api"]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in api["volumes"]}
    assert mounts["./examples/judges.yaml"] == api["environment"]["RJ_JUDGES_FILE"]
    assert (ROOT / "examples" / "judges.yaml").is_file()
    assert api["command"][:2] == ["rubric-judge", "serve"]
    assert api["ports"] == ["127.0.0.1:8000:8000"]  # loopback only by default


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    text = _dockerfile()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, flags=re.MULTILINE)
    assert [name for _, name in stages] == ["builder", "runtime"]
    assert all(image.endswith("-slim") for image, _ in stages)
    assert "COPY --from=builder /opt/venv /opt/venv" in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users
    assert users[-1] not in {"root", "0"}


def test_dockerfile_healthcheck_and_command() -> None:
    text = _dockerfile().replace("\\\n", " ")  # join continued lines
    health = re.search(r"^HEALTHCHECK .*? CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert health is not None
    probe = json.loads(health.group(1))
    assert probe[:2] == ["python", "-c"]
    assert "urllib.request" in probe[2]
    assert "/readyz" in probe[2]  # ready (schema, database, Redis), not just alive
    compile(probe[2], "<healthcheck>", "exec")
    cmd = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert json.loads(cmd[-1]) == ["rubric-judge", "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_compose_refuses_to_start_without_api_keys() -> None:
    env = _compose()["services"]["api"]["environment"]
    # ${VAR:?message}: docker compose stops with the message when the variable is unset or empty.
    assert re.fullmatch(r"\$\{RJ_API_KEYS:\?.+\}", env["RJ_API_KEYS"])


def test_the_image_installs_from_the_lock_with_what_its_routes_need() -> None:
    text = _dockerfile()
    assert "COPY requirements/docker.lock" in text and "-c requirements/docker.lock" in text
    assert re.search(r"^ARG EXTRAS=jobs,stats$", text, flags=re.MULTILINE)  # /v1/jobs and /v1/agreement
    lock = (ROOT / "requirements" / "docker.lock").read_text(encoding="utf-8")
    pinned = {line.split("==")[0].lower() for line in lock.splitlines() if "==" in line and not line.startswith(" ")}
    for package in ("fastapi", "openai", "sqlalchemy", "arq", "scipy", "krippendorff"):
        assert package in pinned, package
    assert "torch" not in pinned  # the reward-model stack belongs on a GPU image of its own


def test_ci_installs_from_the_lock_without_replacing_the_cpu_torch() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-c requirements/ci.lock" in makefile and "torch==2.13.0" in makefile
    lock = (ROOT / "requirements" / "ci.lock").read_text(encoding="utf-8")
    pinned = {line.split("==")[0].lower() for line in lock.splitlines() if "==" in line and not line.startswith(" ")}
    assert "torch" not in pinned and not any(p.startswith(("nvidia-", "triton")) for p in pinned)
    assert {"verl", "trl", "transformers", "pytest"} <= pinned


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    text = _dockerfile()
    for package in ("rubrics", "judge", "api", "reward_model", "migrations"):
        assert f"COPY {package} ./{package}" in text
        assert (ROOT / package).is_dir()
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert ".venv" in ignored
    assert "README.md" not in ignored


def test_api_and_workers_keep_their_spool_on_a_volume() -> None:
    """Verdicts answered while PostgreSQL is down wait in the spool: it must outlive the container."""
    compose = _compose()
    for name in ("api", "worker"):
        service = compose["services"][name]
        assert service["environment"]["RJ_SPOOL_DIR"] == "/var/lib/rubric-judge/spool"
        assert "spool:/var/lib/rubric-judge/spool" in service["volumes"]
    assert "spool" in compose["volumes"]
    assert "/var/lib/rubric-judge/spool" in _dockerfile()
