"""Fail the test (or module) that leaves an asyncio task running on its loop.

pytest-asyncio closes each loop through ``asyncio.Runner``, which cancels the
tasks still pending without a word, so a background task nobody owns would go
unnoticed. Right after a runner fixture is created this plugin registers a
check on it. Finalizers run last-in first-out, so the check runs after every
async fixture on that loop has been torn down and before the loop is closed:
whatever is still pending then was leaked, and the teardown error names the
test (function-scoped loop) or the last test of the module (module-scoped loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest

# Rounds of the loop a task that is already finishing (cancelled, or awaiting a
# closed socket) gets before it counts as leaked.
_SETTLE_ROUNDS = 20
_SETTLE_SECONDS = 0.01


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    where = getattr(coro, "__qualname__", None) or repr(coro)
    return f"{task.get_name()} running {where}"


def _pending(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks(loop) if not task.done()]


def _check_no_pending_tasks(runner: asyncio.Runner, owner: str) -> None:
    loop = runner.get_loop()
    if loop.is_closed():
        return
    for _ in range(_SETTLE_ROUNDS):
        if not _pending(loop):
            return
        loop.run_until_complete(asyncio.sleep(_SETTLE_SECONDS))
    leaked = _pending(loop)
    if not leaked:
        return
    for task in leaked:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*leaked, return_exceptions=True))
    pytest.fail(
        f"{owner} left {len(leaked)} asyncio task(s) running: "
        + "; ".join(_describe(task) for task in leaked),
        pytrace=False,
    )


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    result = yield
    name = fixturedef.argname
    if (
        name.startswith("_")
        and name.endswith("_scoped_runner")
        and isinstance(result, asyncio.Runner)
    ):
        owner = request.node.nodeid or "the session"
        fixturedef.addfinalizer(lambda: _check_no_pending_tasks(result, owner))
    return result
