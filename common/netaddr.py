"""Host names and URLs in the configuration, checked without touching the network.

A plant config names PLCs, brokers and servers by host and port; a port typed into the host
(``host = "127.0.0.1:502"``), a port out of range or an unclosed IPv6 bracket would otherwise pass
``check-config`` and fail only when the daemon starts (docs/configuration.md).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

#: A DNS name (RFC 1123 labels) or an IPv4 address; IPv6 literals are checked with ipaddress.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def check_host(host: str) -> str:
    """``host`` if it is a host name or an IP address, else ValueError saying what is wrong."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise ValueError(
                f"{host!r} is not a host name or address (a port goes into its own key: port = ...)"
            ) from None
        return host
    if not _HOSTNAME.match(host):
        raise ValueError(f"{host!r} is not a host name or IP address")
    return host


def check_url(url: str) -> str:
    """``url`` if its host and port are well formed (``scheme://host[:port][/path]``), else ValueError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL ({exc})") from None
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    check_host(parts.hostname)
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{url!r}: port {port} out of range 1-65535")
    return url
