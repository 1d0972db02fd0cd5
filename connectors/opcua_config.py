"""Configuration of an OPC UA source: the ``[[sources]]`` entries with ``type = "opcua"``.

The connector owns its model (docs/configuration.md is generated from it). Secrets never live in
the file: the password comes from an environment variable or a file named here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from common.models import StrictModel
from common.netaddr import check_url
from connectors.base import SourceBase

Security = Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]

#: OPC UA node id string syntax (Part 6, 5.3.1.10): optional ``ns=<n>;`` or ``nsu=<uri>;``, then
#: ``i=<number>``, ``s=<text>``, ``g=<guid>`` or ``b=<base64>``.
_NODE_ID = re.compile(
    r"^(?:(?:ns=\d{1,5}|nsu=[^;]+);)?"
    r"(?:i=\d{1,10}|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|b=[A-Za-z0-9+/=]+)$",
    re.S,
)


class OpcuaTag(StrictModel):
    """One OPC UA variable node."""

    #: ``asset.signal``; the asset is the text before the first dot.
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$")
    #: ``ns=2;s=Name``, ``nsu=URI;s=Name`` (immune to namespace renumbering) or ``i=85``.
    node_id: str = Field(min_length=3)
    #: Engineering unit, stored with KPIs that pass the signal through.
    unit: str = ""
    #: ``value = raw * scale + offset``.
    scale: float = 1.0
    #: Added after scaling.
    offset: float = 0.0
    #: Plausible engineering range; a value outside it is stored with quality ``bad``.
    min: float | None = None
    #: Upper end of the plausible range (see min).
    max: float | None = None

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, v: str) -> str:
        if not _NODE_ID.match(v):
            raise ValueError(
                "node id must look like 'ns=2;s=Name', 'ns=2;i=1001', 'nsu=URI;s=Name' or 'i=85' "
                "(ns and i are numbers; g= a GUID, b= base64)"
            )
        return v

    @model_validator(mode="after")
    def _range(self) -> OpcuaTag:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        if self.scale == 0:
            raise ValueError("scale = 0 makes every value equal to offset")
        return self

    @property
    def asset(self) -> str:
        return self.name.split(".", 1)[0]


class OpcuaSource(SourceBase):
    """An OPC UA server read with the Read and subscription services only (never Write)."""

    #: Selects the OPC UA connector.
    type: Literal["opcua"]
    #: ``opc.tcp://host:port/path``.
    endpoint: str
    #: ``subscribe``: the server reports changes (cheap); ``poll``: Read every ``poll_interval_ms``.
    mode: Literal["subscribe", "poll"] = "subscribe"
    #: Message security: Basic256Sha256 signing, or signing and encryption, with certificates.
    security: Security = "None"
    #: The agent's application instance certificate (needed for any security but None).
    cert_file: str | None = None
    #: Private key of cert_file (PEM).
    key_file: str | None = None
    #: The server's certificate, pinned; unset = take the one the server presents.
    server_cert_file: str | None = None
    #: User name for a user-name identity token; unset = anonymous.
    username: str | None = None
    #: Name of the environment variable that holds the password (never the password itself).
    password_env: str | None = None
    #: File whose first line is the password (e.g. a systemd credential), used when no env var is named.
    password_file: str | None = None
    #: Allow a user name and password with ``security = "None"``: the password then crosses the
    #: network in clear. Off by default; when on, the agent warns at every start.
    allow_plaintext_password: bool = False
    #: The variables to read: ``[[sources.tags]]``.
    tags: list[OpcuaTag] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not v.startswith("opc.tcp://"):
            raise ValueError("must start with opc.tcp://")
        return check_url(v)

    @model_validator(mode="after")
    def _security(self) -> OpcuaSource:
        if self.security != "None" and not (self.cert_file and self.key_file):
            raise ValueError(f"security {self.security!r} needs cert_file and key_file")
        if self.password_env is not None and not self.password_env.replace("_", "").isalnum():
            raise ValueError("password_env names an environment variable, e.g. KILNWATCH_OPCUA_PASSWORD")
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("a password needs a username")
        if self.username and self.security == "None" and not self.allow_plaintext_password:
            raise ValueError(
                'username with security = "None" sends the password in clear: use '
                "Basic256Sha256_SignAndEncrypt, or set allow_plaintext_password = true on a trusted network"
            )
        return self

    def password(self) -> str | None:
        """The password from the environment or a file; never from the config text."""
        if self.password_env:
            return os.environ.get(self.password_env)
        if self.password_file:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        return None
