"""Keep secret values out of log records: tokens and keys become ``[redacted]``.

Secrets are never formatted into messages on purpose; this filter is the net
under that rule for what we do not control, such as tracebacks of broad
``except`` blocks whose exception text may quote a value.
"""

from __future__ import annotations

import logging
import traceback

REDACTED = "[redacted]"
_MIN_SECRET = 8  # shorter values would redact ordinary words


class SecretRedactor(logging.Filter):
    """Rewrites a record's message and traceback text with every known secret replaced."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, *values: str) -> None:
        for value in values:
            if value and len(value) >= _MIN_SECRET:
                self._secrets.add(value)
                # a PEM key may be quoted line by line
                self._secrets.update(
                    line for line in value.splitlines() if len(line) >= 16 and "-----" not in line
                )

    def discard(self, *values: str) -> None:
        for value in values:
            self._secrets.discard(value)
            for line in value.splitlines():
                self._secrets.discard(line)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        clean = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            text = self.redact(record.exc_text)
            if text != record.exc_text:
                record.exc_text = text
        if clean != message:
            record.msg, record.args = clean, None
        return True
