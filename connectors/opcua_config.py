"""Configuration of an OPC UA source: the ``[[sources]]`` entries with ``type = "opcua"``.

The connector owns its model (docs/configuration.md is generated from it). Secrets never live in
the file: the password comes from an environment variable or a file named here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from common.models import StrictModel
from connectors.base import SourceBase

Security = Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]


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
        if not (v.startswith("ns=") or v.startswith("nsu=") or v.startswith("i=") or v.startswith("s=")):
            raise ValueError("node id must look like 'ns=2;s=Name', 'nsu=URI;s=Name' or 'i=85'")
        return v

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
    #: The variables to read: ``[[sources.tags]]``.
    tags: list[OpcuaTag] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not v.startswith("opc.tcp://"):
            raise ValueError("must start with opc.tcp://")
        return v

    @model_validator(mode="after")
    def _security(self) -> OpcuaSource:
        if self.security != "None" and not (self.cert_file and self.key_file):
            raise ValueError(f"security {self.security!r} needs cert_file and key_file")
        if self.password_env is not None and not self.password_env.replace("_", "").isalnum():
            raise ValueError("password_env names an environment variable, e.g. KILNWATCH_OPCUA_PASSWORD")
        return self

    def password(self) -> str | None:
        """The password from the environment or a file; never from the config text."""
        if self.password_env:
            return os.environ.get(self.password_env)
        if self.password_file:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        return None
