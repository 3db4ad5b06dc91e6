"""The README's sample answer is what the demo archive answers to the README's request."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stats import Archive, TimeSeriesRequest, query_timeseries

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def sample_request() -> dict[str, Any]:
    match = re.search(r"curl -s -X POST http://127\.0\.0\.1:8000/api/v1/timeseries .*?-d '(\{.*?\})'\n```", README, re.S)
    assert match, "the README's first request"
    return json.loads(match.group(1))


def sample_answer() -> dict[str, Any]:
    match = re.search(r"The answer lists the dates oldest first.*?```json\n(.*?)```", README, re.S)
    assert match, "the README's sample answer"
    return json.loads(match.group(1))


def assert_shown(shown: Any, actual: Any, where: str) -> None:
    """Every value the README shows matches, to the digits shown; "..." stands for what is left out."""
    if isinstance(shown, dict):
        for key, value in shown.items():
            if key != "...":
                assert key in actual, where + "." + key
                assert_shown(value, actual[key], where + "." + key)
    elif isinstance(shown, list):
        items = [v for v in shown if v != "..."]
        for i, value in enumerate(items):
            assert_shown(value, actual[i], f"{where}[{i}]")
    elif isinstance(shown, float):
        digits = len(repr(shown).split(".")[1])
        assert actual == pytest.approx(shown, abs=0.51 * 10 ** -digits), where
    else:
        assert shown == actual, where


def test_the_sample_answer_is_the_demo_answer(demo_root: Path) -> None:
    request = TimeSeriesRequest.from_dict(sample_request())
    actual = query_timeseries(request, Archive.open(demo_root)).to_dict()
    shown = sample_answer()
    assert len([e for e in shown["series"] if e != "..."]) >= 2
    assert_shown(shown, actual, "answer")
