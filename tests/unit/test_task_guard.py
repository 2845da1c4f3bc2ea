"""The suite's task guard fails exactly the test that leaves a task running."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]

INNER = """
import asyncio

async def test_leaks_a_task():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="forgotten")

async def test_awaits_its_task():
    task = asyncio.create_task(asyncio.sleep(0))
    await task

async def test_cancels_its_task():
    task = asyncio.create_task(asyncio.sleep(3600))
    task.cancel()
"""


def test_the_leaking_test_is_named_and_the_others_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "tests.task_guard", "-o", "asyncio_mode=auto", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_inner.py::test_leaks_a_task left 1 asyncio task(s) running: forgotten running*"]
    )
