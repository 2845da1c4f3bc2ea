"""Secrets stay out of log output: messages, tracebacks, malformed calls, the runtime's logs."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from jhub_gateway import redact
from jhub_gateway.models import Cluster
from jhub_gateway.runtime import preload
from jhub_gateway.runtime.service import GatewaySchedulerService, RuntimeSettings
from tests.polling import until

# The literal appears in the source line that raises below, so a traceback that
# quotes source lines carries it too.
TOKEN = "tok-5f1c9a7e2b4d4c0e8a6f3b1d9e7c5a3b"
RUNTIME_LOG = "distributed.jhub_gateway.runtime"


@pytest.fixture(autouse=True)
def registered():
    redact.install()
    redact.register_secret(TOKEN)
    yield
    redact.forget_secret(TOKEN)


def _fail_with_token() -> None:
    raise ValueError("hub said: bad token tok-5f1c9a7e2b4d4c0e8a6f3b1d9e7c5a3b")


def test_messages_arguments_and_pem_keys_are_redacted(caplog):
    key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----"
    logger = logging.getLogger("jhub_gateway.test")
    with caplog.at_level(logging.INFO, logger="jhub_gateway.test"):
        logger.info("request with %s and %s", TOKEN, key)
    assert TOKEN not in caplog.text and "MHcCAQEEI" not in caplog.text
    assert caplog.text.count(redact.REDACTED) == 2


def test_a_traceback_with_the_token_in_message_and_source_is_redacted(caplog):
    logger = logging.getLogger("jhub_gateway.test")
    with caplog.at_level(logging.INFO, logger="jhub_gateway.test"):
        try:
            _fail_with_token()
        except ValueError:
            logger.exception("handling failed")
    record = caplog.records[-1]
    assert record.exc_text is not None
    # the traceback is there, with the raising line and the exception type ...
    assert "Traceback (most recent call last)" in record.exc_text
    assert "_fail_with_token" in record.exc_text and "ValueError: hub said" in record.exc_text
    # ... and the token is not, neither in the message nor in the quoted source line
    assert TOKEN not in caplog.text
    assert record.exc_text.count(redact.REDACTED) == 2


def test_a_chained_cause_is_redacted(caplog):
    logger = logging.getLogger("jhub_gateway.test")
    with caplog.at_level(logging.INFO, logger="jhub_gateway.test"):
        try:
            try:
                _fail_with_token()
            except ValueError as exc:
                raise RuntimeError("request failed") from exc
        except RuntimeError:
            logger.warning("request failed", exc_info=True)
    text = caplog.text
    assert "direct cause" in text and "RuntimeError: request failed" in text
    assert TOKEN not in text


def test_a_malformed_log_call_is_redacted_not_dropped(caplog):
    logger = logging.getLogger("jhub_gateway.test")
    with caplog.at_level(logging.INFO, logger="jhub_gateway.test"):
        logger.info("two placeholders %s %s", TOKEN)  # noqa: PLE1206 - malformed on purpose
    assert "did not format" in caplog.text and redact.REDACTED in caplog.text
    assert TOKEN not in caplog.text


def test_forgotten_secrets_are_shown_again():
    other = "another-secret-0123456789"
    redact.register_secret(other)
    assert redact.redact_text(f"x {other}") == f"x {redact.REDACTED}"
    redact.forget_secret(other)
    assert redact.redact_text(f"x {other}") == f"x {other}"
    assert redact.redact_text("short") == "short"  # too short to register


def test_cluster_repr_shows_no_secret():
    cluster = Cluster(name="c", username="u", token="tok-123456789", tls_key="KEY-abcdef")
    assert "tok-123456789" not in repr(cluster) and "KEY-abcdef" not in repr(cluster)


# -- the scheduler runtime --------------------------------------------------


async def test_the_scheduler_runtime_registers_its_token(monkeypatch, tmp_path):
    token = "runtime-token-b8e1f0d2c4a6"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    monkeypatch.setenv(preload.ENV_API_URL, "http://127.0.0.1:9/api")
    monkeypatch.setenv(preload.ENV_API_TOKEN, str(token_file))
    monkeypatch.setenv(preload.ENV_CLUSTER_NAME, "c1")
    try:
        settings = await preload.load_settings("", 15.0, 3.0, 0.0)
        assert settings.token == token and token not in repr(settings)
        assert redact.redact_text(f"Authorization: token {token}") == (
            f"Authorization: token {redact.REDACTED}"
        )
    finally:
        redact.forget_secret(token)


class _FailingScheduler:
    """The parts of a Scheduler the runtime's loops touch; retiring fails."""

    address = "tcp://127.0.0.1:8786"
    services: dict[str, object] = {}
    workers: dict[str, object] = {}
    idle_since: float | None = None
    queued: tuple = ()
    unrunnable: tuple = ()

    async def retire_workers(self, **kwargs: object) -> None:
        _fail_with_token()


def _runtime() -> GatewaySchedulerService:
    settings = RuntimeSettings(api_url="http://127.0.0.1:9/api", cluster_name="c", token=TOKEN)
    return GatewaySchedulerService(_FailingScheduler(), settings)  # type: ignore[arg-type]


async def test_a_failed_retire_logs_the_traceback_without_the_token(caplog):
    runtime = _runtime()
    with caplog.at_level(logging.WARNING, logger=RUNTIME_LOG):
        await runtime._retire({"w-1"})
    (record,) = [r for r in caplog.records if r.name == RUNTIME_LOG]
    assert record.getMessage() == "Retiring workers ['w-1'] failed"
    assert record.exc_text and "_fail_with_token" in record.exc_text
    assert TOKEN not in caplog.text
    assert runtime._retiring == set()  # retried after the next heartbeat


async def test_a_failed_heartbeat_logs_the_traceback_without_the_token(caplog):
    runtime = _runtime()
    calls = []

    async def heartbeat(message: dict[str, object]) -> bool:
        calls.append(message)
        _fail_with_token()
        return True

    runtime.client = SimpleNamespace(heartbeat=heartbeat)  # type: ignore[assignment]
    runtime._wake.set()
    with caplog.at_level(logging.WARNING, logger=RUNTIME_LOG):
        task = asyncio.get_running_loop().create_task(runtime._heartbeat_loop())
        try:
            await until(lambda: caplog.records, timeout=10, what="a heartbeat failure logged")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    record = caplog.records[0]
    assert record.getMessage() == "Heartbeat failed"
    assert record.exc_text and "ValueError: hub said" in record.exc_text
    assert TOKEN not in caplog.text
    assert calls[0]["scheduler_address"] == "tcp://127.0.0.1:8786"
