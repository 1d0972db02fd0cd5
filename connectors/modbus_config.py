"""Configuration of a Modbus TCP source: the ``[[sources]]`` entries with ``type = "modbus"``.

The connector owns its model (docs/configuration.md is generated from it). Validation is pure: it
never touches the network, so ``kilnwatch check-config`` is safe far from the plant.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from common.models import StrictModel
from common.netaddr import check_host
from connectors.base import SourceBase

DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "bool"]
RegisterTable = Literal["holding", "input", "coil", "discrete"]

#: Registers occupied by each data type (bool lives in one coil/discrete bit or one register).
#: The one table of widths: the request planner, the probe and the simulator's register map use it.
REGISTER_WIDTH: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "float64": 4,
    "bool": 1,
}


class ModbusTag(StrictModel):
    """One value read from a register (or a group of registers) or a bit of the device."""

    # ``register`` in the file; ``address`` in code because BaseModel already has ``register``.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        str_strip_whitespace=True,
        strict=True,
        allow_inf_nan=False,
    )

    #: ``asset.signal``; the asset is the text before the first dot.
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$")
    #: 0-based protocol address of the first register or bit (``register`` in the file).
    address: int = Field(alias="register", ge=0, le=65535)
    #: Register table: holding (FC3), input (FC4), coil (FC1) or discrete input (FC2).
    table: RegisterTable = "holding"
    #: How the register(s) encode the value; coil and discrete tags are bool.
    data_type: DataType = "float32"
    #: Order of the 16-bit words of a 32/64-bit value.
    word_order: Literal["big", "little"] = "big"
    #: Order of the two bytes inside each word.
    byte_order: Literal["big", "little"] = "big"
    #: ``value = raw * scale + offset``.
    scale: float = 1.0
    #: Added after scaling.
    offset: float = 0.0
    #: Engineering unit, stored with KPIs that pass the signal through.
    unit: str = ""
    #: Plausible engineering range; a value outside it is stored with quality ``bad``.
    min: float | None = None
    #: Upper end of the plausible range (see min).
    max: float | None = None

    @model_validator(mode="after")
    def _bits(self) -> ModbusTag:
        if self.table in ("coil", "discrete") and self.data_type != "bool":
            raise ValueError(f"table {self.table!r} holds single bits: data_type must be 'bool'")
        if self.address + REGISTER_WIDTH[self.data_type] - 1 > 65535:
            raise ValueError("register range runs past address 65535")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        if self.scale == 0:
            raise ValueError("scale = 0 makes every value equal to offset")
        return self

    @property
    def asset(self) -> str:
        return self.name.split(".", 1)[0]


class ModbusSource(SourceBase):
    """A Modbus TCP device (PLC, gateway) polled with read function codes only (1-4)."""

    #: Selects the Modbus TCP connector.
    type: Literal["modbus"]
    #: Host name or IP address of the device or gateway.
    host: str
    #: TCP port (502 is the Modbus default).
    port: int = Field(default=502, ge=1, le=65535)
    #: Modbus unit (device) id; 0 or 255 for many TCP-native devices.
    unit_id: int = Field(default=1, ge=0, le=255)
    #: Registers of a table closer than this are merged into one request (Telegraf's optimisation).
    max_gap_registers: int = Field(default=10, ge=0, le=124)
    #: Upper bound of one FC3/FC4 read; some devices accept fewer than the protocol's 125.
    max_registers_per_request: int = Field(default=125, ge=1, le=125)
    #: Upper bound of one FC1/FC2 read (protocol limit 2,000).
    max_bits_per_request: int = Field(default=2000, ge=1, le=2000)
    #: A tag quarantined after a Modbus exception is retried this often.
    quarantine_retry_secs: float = Field(default=60, gt=0)
    #: The values to read: ``[[sources.tags]]``.
    tags: list[ModbusTag] = Field(min_length=1)

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return check_host(v)


__all__ = ["REGISTER_WIDTH", "DataType", "ModbusSource", "ModbusTag", "RegisterTable"]
