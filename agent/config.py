"""The agent's configuration file (CONTRACT §2), validated strictly.

Unknown keys are errors because in a plant config they are almost always typos
(``poll_intervall_ms``) that would otherwise silently fall back to a default.
Validation never touches the network: ``kilnwatch check-config`` must be safe to
run on a laptop far from the plant.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "bool"]
RegisterTable = Literal["holding", "input", "coil", "discrete"]
AssetType = Literal["kiln", "raw_mill", "coal_mill", "cement_mill", "whr", "plant"]
Security = Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]

#: Registers occupied by each data type (bool lives in one coil/discrete bit or one register).
REGISTER_WIDTH: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "float64": 4,
    "bool": 1,
}

#: Default direct CO2 factor of a fuel by type, kg CO2/GJ NCV (DOMAIN §4, IPCC 2006 Table 2.2).
FUEL_CO2_KG_PER_GJ: dict[str, float] = {
    "bituminous_coal": 94.6,
    "petcoke": 97.5,
    "natural_gas": 56.1,
    "diesel": 74.1,
    "fuel_oil": 77.4,
    "lignite": 101.0,
}


class ConfigError(Exception):
    """A configuration file that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


TagList = str | list[str]


def as_tag_list(role: TagList | None) -> list[str]:
    """A role names one tag or a list of tags that are summed (CONTRACT §2)."""
    if role is None:
        return []
    return [role] if isinstance(role, str) else list(role)


class AgentSection(_Strict):
    site: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    db_path: str = "data/kilnwatch.duckdb"
    evaluate_every_secs: float = Field(default=10, gt=0)
    flush_every_secs: float = Field(default=5, gt=0)
    rule_files: list[str] = []
    #: Raw samples kept in memory for the rule engine. The engine folds each tick's new samples into
    #: its own per-minute statistics (rolling rule windows live there), so this only has to cover a
    #: few evaluation periods plus late arrivals.
    window_secs: int = Field(default=300, ge=60)
    #: Prometheus metrics on 127.0.0.1:PORT; 0 = disabled.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    #: A good sample older than this is reported as ``stale`` by the rule engine.
    stale_after_secs: float = Field(default=30, gt=0)
    #: Net WHR power off comprehensive electricity (DOMAIN §3: not confirmed by the standard).
    net_whr_in_comprehensive_power: bool = True
    #: Shift start times (UTC, HH:MM) for v_shift_report.
    shifts: list[str] = ["06:00", "14:00", "22:00"]
    #: Site altitude above sea level; GB 16780 grade-3 correction above 1500 m (DOMAIN §3).
    altitude_m: float = 0.0
    site_pressure_pa: float | None = None
    #: Consistent copy of the database written by the agent for auditors, since no other process can
    #: open the live file while the agent writes it (docs/auditors.md); unset = off.
    snapshot_path: str | None = None
    snapshot_every_secs: float = Field(default=3600, ge=60)

    @field_validator("shifts")
    @classmethod
    def _shifts(cls, v: list[str]) -> list[str]:
        for s in v:
            hh, _, mm = s.partition(":")
            if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
                raise ValueError(f"shift start {s!r} is not HH:MM")
        if not v:
            raise ValueError("at least one shift start is needed")
        return sorted(v)


class MqttSection(_Strict):
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = Field(default="kilnwatch", pattern=r"^[A-Za-z0-9_./-]+$")
    client_id: str | None = None
    username: str | None = None
    #: Name of the environment variable that holds the password (never the password itself).
    password_env: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    protocol: Literal["5", "3.1.1", "auto"] = "auto"
    keepalive_secs: int = Field(default=30, ge=5)
    #: KPI snapshots: publish when any KPI moves by more than this fraction, and at least this often.
    kpi_deadband_pct: float = Field(default=1.0, ge=0)
    kpi_heartbeat_secs: float = Field(default=60, gt=0)
    reconnect_min_secs: float = Field(default=1, gt=0)
    reconnect_max_secs: float = Field(default=60, gt=0)
    #: Delivered outbox rows older than this are pruned; undelivered rows are never pruned.
    outbox_retention_days: float = Field(default=7.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not (v.startswith("mqtt://") or v.startswith("mqtts://")):
            raise ValueError("must start with mqtt:// or mqtts://")
        return v

    @model_validator(mode="after")
    def _password_not_inline(self) -> MqttSection:
        if self.password_env is not None and not self.password_env.replace("_", "").isalnum():
            raise ValueError("password_env names an environment variable, e.g. KILNWATCH_MQTT_PASSWORD")
        return self

    def password(self) -> str | None:
        """Read the password from the environment or a file; never from the config text."""
        if self.password_env:
            return os.environ.get(self.password_env)
        if self.password_file:
            return Path(self.password_file).read_text().strip()
        return None


class ModbusTag(_Strict):
    # ``register`` in the file; ``address`` in code because BaseModel already has ``register``.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$")
    address: int = Field(alias="register", ge=0, le=65535)
    table: RegisterTable = "holding"
    data_type: DataType = "float32"
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    #: Plausible engineering range; a value outside it is stored with quality ``bad``.
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bits(self) -> ModbusTag:
        if self.table in ("coil", "discrete") and self.data_type != "bool":
            raise ValueError(f"table {self.table!r} holds single bits: data_type must be 'bool'")
        if self.address + REGISTER_WIDTH[self.data_type] - 1 > 65535:
            raise ValueError("register range runs past address 65535")
        return self

    @property
    def asset(self) -> str:
        return self.name.split(".", 1)[0]


class OpcuaTag(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$")
    node_id: str = Field(min_length=3)
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    min: float | None = None
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


class _SourceBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    poll_interval_ms: int = Field(default=1000, ge=10)
    timeout_ms: int = Field(default=1000, ge=10)
    reconnect_min_ms: int = Field(default=500, ge=10)
    reconnect_max_ms: int = Field(default=30_000, ge=10)
    enabled: bool = True


class ModbusSource(_SourceBase):
    type: Literal["modbus"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    #: Registers of a table closer than this are merged into one request (Telegraf's optimisation).
    max_gap_registers: int = Field(default=10, ge=0, le=124)
    max_registers_per_request: int = Field(default=125, ge=1, le=125)
    max_bits_per_request: int = Field(default=2000, ge=1, le=2000)
    #: A tag quarantined after a Modbus exception is retried this often.
    quarantine_retry_secs: float = Field(default=60, gt=0)
    tags: list[ModbusTag] = Field(min_length=1)


class OpcuaSource(_SourceBase):
    type: Literal["opcua"]
    endpoint: str
    mode: Literal["subscribe", "poll"] = "subscribe"
    security: Security = "None"
    cert_file: str | None = None
    key_file: str | None = None
    server_cert_file: str | None = None
    username: str | None = None
    password_env: str | None = None
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
        return self

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None


Source = Annotated[ModbusSource | OpcuaSource, Field(discriminator="type")]

#: Roles that name tags (summed when a list), by asset type (CONTRACT §2 table).
TAG_ROLES: dict[str, tuple[str, ...]] = {
    "kiln": (
        "kiln_feed_tph",
        "fuel_tph",
        "fuel_ncv_tag",
        "power_kw",
        "ph_exit_temp_c",
        "ph_exit_o2_pct",
        "kiln_inlet_o2_pct",
        "kiln_inlet_co_pct",
        "clinker_temp_c",
        "secondary_air_temp_c",
        "tertiary_air_temp_c",
    ),
    "raw_mill": ("feed_tph", "power_kw", "running"),
    "coal_mill": ("feed_tph", "power_kw", "running"),
    "cement_mill": ("feed_tph", "power_kw", "fineness_blaine_cm2_per_g", "running"),
    "whr": ("generator_kw", "aux_kw", "aqc_inlet_temp_c", "sp_inlet_temp_c"),
    "plant": ("power_kw", "compressor_kw", "production_running"),
}


class Asset(_Strict):
    """What each signal means to the KPIs (CONTRACT §2 ``[[assets]]``)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    type: AssetType
    # kiln
    feed_to_clinker: float | None = Field(default=None, gt=0.5, lt=3.0)
    kiln_feed_tph: TagList | None = None
    fuel_tph: TagList | None = None
    fuel_ncv_mj_per_kg: float | None = Field(default=None, gt=0, lt=60)
    fuel_ncv_tag: str | None = None
    fuel_type: str = "bituminous_coal"
    fuel_co2_kg_per_gj: float | None = Field(default=None, ge=0, lt=200)
    calcination_co2_kg_per_t: float = Field(default=525.0, ge=0, lt=1000)
    clinker_cao_pct: float | None = Field(default=None, ge=0, le=100)
    clinker_mgo_pct: float | None = Field(default=None, ge=0, le=100)
    ph_exit_temp_c: TagList | None = None
    ph_exit_o2_pct: TagList | None = None
    kiln_inlet_o2_pct: TagList | None = None
    kiln_inlet_co_pct: TagList | None = None
    clinker_temp_c: TagList | None = None
    secondary_air_temp_c: TagList | None = None
    tertiary_air_temp_c: TagList | None = None
    #: Design and target figures that the built-in rules compare against.
    nominal_feed_tph: float | None = Field(default=None, gt=0)
    target_specific_heat_kcal_per_kg: float | None = Field(default=None, gt=0)
    design_ph_exit_temp_c: float | None = None
    # all
    power_kw: TagList | None = None
    # mills
    feed_tph: TagList | None = None
    running: TagList | None = None
    fineness_blaine_cm2_per_g: TagList | None = None
    rated_power_kw: float | None = Field(default=None, gt=0)
    # whr
    generator_kw: TagList | None = None
    aux_kw: TagList | None = None
    aqc_inlet_temp_c: TagList | None = None
    sp_inlet_temp_c: TagList | None = None
    kiln: str | None = None
    # plant
    compressor_kw: TagList | None = None
    production_running: TagList | None = None

    @model_validator(mode="after")
    def _roles_fit_type(self) -> Asset:
        allowed = set(TAG_ROLES[self.type])
        given = {r for rs in TAG_ROLES.values() for r in rs if getattr(self, r) is not None}
        wrong = sorted(given - allowed)
        if wrong:
            raise ValueError(f"role(s) {', '.join(wrong)} do not apply to an asset of type {self.type!r}")
        if self.type == "kiln":
            if self.kiln_feed_tph is not None and self.feed_to_clinker is None:
                raise ValueError("feed_to_clinker is needed to derive clinker from kiln_feed_tph")
            if self.fuel_tph is not None and self.fuel_ncv_mj_per_kg is None and self.fuel_ncv_tag is None:
                raise ValueError("fuel_tph needs fuel_ncv_mj_per_kg or fuel_ncv_tag")
            if self.fuel_co2_kg_per_gj is None and self.fuel_type not in FUEL_CO2_KG_PER_GJ:
                raise ValueError(
                    f"unknown fuel_type {self.fuel_type!r}: give fuel_co2_kg_per_gj or one of "
                    + ", ".join(sorted(FUEL_CO2_KG_PER_GJ))
                )
        if self.type == "whr" and self.kiln is None:
            raise ValueError("a whr asset names the kiln its clinker is credited to: kiln = '...'")
        return self

    def role_tags(self, role: str) -> list[str]:
        """Tags behind a role, empty when the role is not configured."""
        value = getattr(self, role, None)
        return as_tag_list(value) if role in TAG_ROLES[self.type] else []

    def roles(self) -> dict[str, list[str]]:
        """Every configured tag role of this asset."""
        return {r: self.role_tags(r) for r in TAG_ROLES[self.type] if self.role_tags(r)}

    @property
    def co2_kg_per_gj(self) -> float:
        if self.fuel_co2_kg_per_gj is not None:
            return self.fuel_co2_kg_per_gj
        return FUEL_CO2_KG_PER_GJ[self.fuel_type]


class Config(_Strict):
    agent: AgentSection
    mqtt: MqttSection | None = None
    sources: list[Source] = []
    assets: list[Asset] = []

    @model_validator(mode="after")
    def _cross_refs(self) -> Config:
        problems: list[str] = []
        names: dict[str, str] = {}
        for i, src in enumerate(self.sources):
            src_tags: Sequence[ModbusTag | OpcuaTag] = src.tags
            for j, tag in enumerate(src_tags):
                where = f"sources[{i}].tags[{j}].name"
                if tag.name in names:
                    problems.append(f"{where}: tag {tag.name!r} is also defined at {names[tag.name]}")
                else:
                    names[tag.name] = where
        seen_src: set[str] = set()
        for i, src in enumerate(self.sources):
            if src.name in seen_src:
                problems.append(f"sources[{i}].name: duplicate source name {src.name!r}")
            seen_src.add(src.name)
        asset_ids = [a.id for a in self.assets]
        for i, a in enumerate(self.assets):
            if asset_ids.count(a.id) > 1 and asset_ids.index(a.id) != i:
                problems.append(f"assets[{i}].id: duplicate asset id {a.id!r}")
            for role, tags in a.roles().items():
                for t in tags:
                    if t not in names:
                        problems.append(f"assets[{i}].{role}: unknown tag {t!r}")
            if a.fuel_ncv_tag is not None and a.fuel_ncv_tag not in names:
                problems.append(f"assets[{i}].fuel_ncv_tag: unknown tag {a.fuel_ncv_tag!r}")
            if a.type == "whr" and a.kiln is not None:
                kilns = [b.id for b in self.assets if b.type == "kiln"]
                if a.kiln not in kilns:
                    problems.append(f"assets[{i}].kiln: {a.kiln!r} is not a kiln asset")
        if problems:
            raise _CrossRefError(problems)
        return self

    def all_tags(self) -> list[ModbusTag | OpcuaTag]:
        out: list[ModbusTag | OpcuaTag] = []
        for s in self.sources:
            out.extend(s.tags)
        return out

    def tag_units(self) -> dict[str, str]:
        return {t.name: t.unit for t in self.all_tags()}

    def assets_matching(self, pattern: str) -> list[Asset]:
        return [a for a in self.assets if fnmatch.fnmatchcase(a.id, pattern)]


class _CrossRefError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("modbus", "opcua") or part.startswith("function-after") or part.startswith("str"):
            # discriminator tag and union branch names are pydantic internals, not key paths
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def format_errors(exc: ValidationError) -> list[str]:
    """One line per problem, each naming the key path (``sources[1].tags[3].data_type: ...``)."""
    lines: list[str] = []
    for err in exc.errors():
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _CrossRefError):
            lines.extend(ctx_err.problems)
            continue
        path = _loc(err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (typo?)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif err["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be")
        lines.append(f"{path}: {msg}")
    return lines


def parse_config(data: dict[str, Any]) -> Config:
    """Validate an already-parsed TOML document."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc)) from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file, raising :class:`ConfigError` with one line per problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{p}: not valid TOML ({exc})"]) from None
    return parse_config(data)
