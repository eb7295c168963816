"""The shipped examples stay valid: samples (and their annotated rules scores), judge profiles, the user rubric."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from judge.backends.rules import RulesJudge
from judge.profiles import JudgeProfile, JudgesFile, load_profiles
from judge.samples import SampleIn, normalise
from rubrics.schema import Rubric

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _lines() -> list[str]:
    return [line for line in (EXAMPLES / "samples.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _prmed_format() -> Rubric:
    # Until rubrics.loader lands, rubric files are validated straight against the schema.
    return Rubric.model_validate(_load_yaml(ROOT / "rubrics" / "builtin" / "prmed-format-1.yaml"))


SAMPLE_LINES = _lines()


def test_samples_file_has_a_varied_set() -> None:
    samples = [SampleIn.model_validate_json(line) for line in SAMPLE_LINES]
    assert 10 <= len(samples) <= 20
    ids = [s.id for s in samples]
    assert None not in ids
    assert len(set(ids)) == len(ids)
    langs = [s.metadata["lang"] for s in samples if s.metadata]
    assert langs.count("zh") > langs.count("en") >= 2
    assert any(s.completion is not None and "<think>" in s.completion for s in samples)
    assert any(len([m for m in s.messages if m.role == "user"]) > 1 for s in samples)


@pytest.mark.parametrize("line", SAMPLE_LINES, ids=[json.loads(line)["id"] for line in SAMPLE_LINES])
def test_every_sample_line_is_a_valid_sample(line: str) -> None:
    sample = SampleIn.model_validate_json(line)
    assert sample.messages[-1].role == "user"
    normalised = normalise(sample)
    assert normalised.hash
    assert normalised.reasoning or normalised.response


@pytest.mark.parametrize("line", SAMPLE_LINES, ids=[json.loads(line)["id"] for line in SAMPLE_LINES])
async def test_rules_judge_scores_examples_as_annotated(line: str) -> None:
    sample = SampleIn.model_validate_json(line)
    assert sample.metadata is not None
    expected = sample.metadata["expected_rules"]
    judge = RulesJudge(JudgeProfile(name="rules", backend="rules"))
    outcome = await judge.score(normalise(sample), _prmed_format())
    assert {key: result.score for key, result in outcome.axes.items()} == expected


def test_examples_cover_the_flaws_the_rules_catch() -> None:
    expected = [json.loads(line)["metadata"]["expected_rules"] for line in SAMPLE_LINES]
    assert any(e["steps_present"] < 4 for e in expected)
    assert any(e["steps_order"] <= 3 and e["steps_present"] == 5 for e in expected)
    assert any(e["language_match"] == 1 and e["response_present"] > 1 for e in expected)
    assert any(e["response_present"] == 1 for e in expected)
    assert any(all(score == 5 for score in e.values()) for e in expected)


def test_injection_sample_is_present() -> None:
    injected = [line for line in SAMPLE_LINES if "Ignore all previous instructions" in line]
    assert len(injected) == 1


def test_judges_file_validates() -> None:
    judges = JudgesFile.model_validate(_load_yaml(EXAMPLES / "judges.yaml")).judges
    by_name = {p.name: p for p in judges}
    assert set(by_name) == {"gpt-4o-mini", "deepseek", "grouped", "qwen-local", "qwen-sglang", "qwen-gen", "rules"}
    assert by_name["deepseek"].base_url == "https://api.deepseek.com/v1"
    assert by_name["qwen-gen"].temperature > 0
    local = by_name["qwen-local"]
    assert local.base_url == "http://127.0.0.1:8000/v1"
    assert local.logprobs
    assert local.structured_output == "json_schema"
    assert by_name["rules"].backend == "rules"
    assert [p.name for p in load_profiles(EXAMPLES / "judges.yaml")] == [p.name for p in judges]


def test_every_judge_the_readme_names_is_in_the_example_judges_file() -> None:
    """A newcomer copies a README command with examples/judges.yaml: every profile it names must exist."""
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    names = set(re.findall(r"--(?:judge|generator)[ =]([A-Za-z0-9][A-Za-z0-9_.:-]*)", readme))
    names |= set(re.findall(r"""\bjudge=["']?([A-Za-z0-9][A-Za-z0-9_.:-]*)""", readme))
    names |= set(re.findall(r"RJ_REWARD_JUDGE=([A-Za-z0-9][A-Za-z0-9_.:-]*)", readme))
    names -= {"NAME", "my-judge"}  # a placeholder, and the profile "Point it at your own model" writes itself
    defined = {p.name for p in load_profiles(EXAMPLES / "judges.yaml")}
    assert "deepseek" in names and "qwen-gen" in names
    assert names <= defined, sorted(names - defined)


def test_user_rubric_validates() -> None:
    rubric = Rubric.model_validate(_load_yaml(EXAMPLES / "my-rubric.yaml"))
    assert rubric.ref == "peds-caregiver@1"
    assert len(rubric.axes) == 3
    assert rubric.kind == "llm"
    for axis in rubric.axes:
        assert sorted(axis.anchors) == [1, 2, 3, 4, 5]
