"""Keep secrets out of log output: a logging filter that masks known passwords in every record.

Libraries log what they send: asyncua's ``-vv`` output prints the ``UserNameIdentityToken`` with the
password in clear, and a broker URL or an exception text may carry credentials. kilnwatch never
logs a password itself; this filter is the second line, on the handlers, so it covers the records
of every logger, ours and the libraries' (docs/configuration.md, "Secrets never live in the file").
"""

from __future__ import annotations

import logging

MASK = "***"
#: Shorter values are not masked: they would mask ordinary words and numbers in unrelated lines.
MIN_SECRET_CHARS = 4


class SecretFilter(logging.Filter):
    """Replaces every registered secret in a record's message, arguments and exception text."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= MIN_SECRET_CHARS:
            self._secrets.add(secret)
            for s in (secret.encode().hex(), repr(secret)[1:-1]):  # as asyncua or repr() may show it
                if s != secret:
                    self._secrets.add(s)

    def _mask(self, text: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(s, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem, not ours: leave the record
            return True
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        return True


#: The process-wide filter, installed on the root logger's handlers by :func:`install`.
SECRETS = SecretFilter()


def install(*secrets: str | None) -> None:
    """Register ``secrets`` and make sure every root handler masks them (idempotent)."""
    for s in secrets:
        SECRETS.add(s)
    for handler in logging.getLogger().handlers:
        if SECRETS not in handler.filters:
            handler.addFilter(SECRETS)
