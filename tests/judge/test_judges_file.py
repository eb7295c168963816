"""The judges file (RJ_JUDGES_FILE) is read with the rubric YAML limits: size and alias expansion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from judge.errors import InvalidRubric, RubricJudgeError
from judge.profiles import MAX_JUDGES_FILE_BYTES, ProfileRegistry, load_profiles
from judge.simulator.profiles import ChatProfiles

ROOT = Path(__file__).resolve().parents[2]

# Nine levels of ten aliases each: 10**9 nodes once expanded, from a few hundred bytes.
ALIAS_BOMB = "a: &a ['泛', '泛', '泛', '泛', '泛', '泛', '泛', '泛', '泛', '泛']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)
ALIAS_BOMB += "judges: [{name: bomb, backend: rules, extra_body: {x: *i}}]\n"

CHINESE_JUDGES = """\
judges:
  - &base {name: base, backend: openai, model: 基础模型, base_url: "http://127.0.0.1:9/v1", timeout_s: 5}
  - <<: *base
    name: zh-judge
    model: 医学评审模型
    aliases: [中文评审员, 评审/医学]
"""


def test_a_chinese_named_judge_with_anchors_loads(tmp_path: Path) -> None:
    path = tmp_path / "评审员.yaml"
    path.write_text(CHINESE_JUDGES, encoding="utf-8")
    _, profile = load_profiles(path)
    assert profile.model == "医学评审模型"
    assert profile.aliases == ("中文评审员", "评审/医学")
    assert profile.base_url == "http://127.0.0.1:9/v1"  # the merge key (<<) still works
    assert ProfileRegistry.from_file(path).get("zh-judge") == profile


def test_an_alias_bomb_fails_with_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "炸弹评审.yaml"
    path.write_text(ALIAS_BOMB, encoding="utf-8")
    assert len(ALIAS_BOMB.encode()) < 2_000
    with pytest.raises(InvalidRubric) as caught:
        ProfileRegistry.from_file(path)
    assert str(path) in caught.value.message
    assert "aliases" in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.field == "judges_file"
    # The simulator reads the same file for its simulators and policies: same limits.
    with pytest.raises(InvalidRubric, match="炸弹评审"):
        ChatProfiles.from_file(path)


def test_a_too_large_judges_file_fails_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "大文件.yaml"
    judge = "  - {name: big, backend: rules, aliases: [" + "中" * 1000 + "]}\n"
    path.write_text("judges:\n" + judge * (MAX_JUDGES_FILE_BYTES // len(judge.encode()) + 1), encoding="utf-8")
    assert path.stat().st_size > MAX_JUDGES_FILE_BYTES
    with pytest.raises(InvalidRubric) as caught:
        load_profiles(path)
    assert str(path) in caught.value.message and "bytes" in caught.value.message
    assert caught.value.field == "judges_file"


def test_bad_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "坏.yaml"
    path.write_text("judges:\n  - name: [unclosed\n", encoding="utf-8")
    with pytest.raises(RubricJudgeError) as caught:
        load_profiles(path)
    assert str(path) in caught.value.message and "\n" not in caught.value.message


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RJ_")}
    bomb = tmp_path / "炸弹评审.yaml"
    bomb.write_text(ALIAS_BOMB, encoding="utf-8")
    env.update(RJ_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'rj.db'}", RJ_JUDGES_FILE=str(bomb), COLUMNS="300")
    return env


@pytest.mark.parametrize("args", [("judges", "list"), ("serve", "--port", "1")])
def test_cli_and_serve_refuse_an_alias_bomb_with_one_line(cli_env: dict[str, str], args: tuple[str, ...]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "judge", *args], env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert cli_env["RJ_JUDGES_FILE"] in errors[0] and "aliases" in errors[0]
    assert "Traceback" not in proc.stderr
