"""Keep secrets out of log output, tracebacks included.

Messages are written with constant text and context, never secrets; this is the
backstop for what slips through anyway (an exception whose message quotes a
request, a traceback showing a local variable). Every log record made in the
process passes through :func:`redact_text` once: known secrets (registered with
:func:`register_secret`) and PEM private keys are replaced by ``[redacted]``.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

__all__ = ["install", "redact_text", "register_secret"]

REDACTED = "[redacted]"
_MIN_SECRET_LENGTH = 8  # shorter strings would redact ordinary words
_PEM_KEY = re.compile(
    r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL
)

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def _parts(value: str) -> set[str]:
    # a multi-line secret (a PEM key) may be quoted line by line
    lines = {line for line in value.splitlines() if len(line) >= 16 and "-----" not in line}
    return {value} | lines


def register_secret(*values: str | None) -> None:
    """From now on, none of ``values`` appears in a log line."""
    with _lock:
        for value in values:
            if value and len(value) >= _MIN_SECRET_LENGTH:
                _secrets.update(_parts(value))


def forget_secret(*values: str | None) -> None:
    """Stop redacting ``values`` (their cluster is gone; keeps the set bounded)."""
    with _lock:
        for value in values:
            if value:
                _secrets.difference_update(_parts(value))


def redact_text(text: str) -> str:
    if "PRIVATE KEY" in text:
        text = _PEM_KEY.sub(REDACTED, text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: its arguments may still hold a secret
        message = f"{record.msg!r} % {record.args!r} (the log call's arguments did not format)"
    record.msg, record.args = redact_text(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)


def install() -> None:
    """Wrap the log record factory so every record is redacted once, at creation."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
