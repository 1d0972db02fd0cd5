"""A simulated PLC server that cannot listen: one exception naming the address and the protocol.

Both protocol libraries report a failed bind their own way: asyncua logs the traceback at ERROR and
re-raises the ``OSError``; pymodbus logs a WARNING and raises a ``RuntimeError`` without the cause.
The servers turn either into :class:`ListenError` and keep the libraries' own log lines about that
failure quiet (:func:`quiet_bind_failure`), so ``kilnwatch simulate`` can say it in one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator


class ListenError(OSError):
    """``cannot listen on HOST:PORT (PROTOCOL): REASON``."""

    def __init__(self, host: str, port: int, protocol: str, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port} ({protocol}): {reason}")
        self.host = host
        self.port = port
        self.protocol = protocol
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


def reason_of(exc: BaseException) -> str:
    """``address already in use`` from an ``OSError`` (the system's text for its errno; asyncio
    puts the whole "error while attempting to bind on address ..." sentence in ``strerror``)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        text = os.strerror(exc.errno)
        return text[:1].lower() + text[1:]
    return str(exc)


def bind_failure(host: str, port: int) -> str:
    """Why binding ``host:port`` fails, found by trying (for libraries that do not say)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return reason_of(exc)
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        # asyncio's create_server sets SO_REUSEADDR on POSIX: do the same to get the same answer
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
            s.listen()
        except OSError as exc:
            return reason_of(exc)
    return "the server did not start listening"


class _DropBindFailure(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


@contextlib.contextmanager
def quiet_bind_failure(logger: str, *fragments: str) -> Iterator[None]:
    """Drop ``logger``'s records that contain one of ``fragments`` (the library's own report of
    the failed bind, which :class:`ListenError` replaces) while the block runs."""
    flt = _DropBindFailure(fragments)
    target = logging.getLogger(logger)
    target.addFilter(flt)
    try:
        yield
    finally:
        target.removeFilter(flt)
