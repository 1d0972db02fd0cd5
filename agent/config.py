"""The agent's configuration file, validated strictly (reference: docs/configuration.md).

Each part owns its model: the Modbus and OPC UA sources live with their connectors
(connectors/modbus_config.py, connectors/opcua_config.py), the assets with the rules
(rules/assets.py). This module only adds the agent's own sections (``[agent]``, ``[mqtt]``),
composes the file schema and turns pydantic's errors into one line per problem naming the key path.

Unknown keys are errors because in a plant config they are almost always typos
(``poll_intervall_ms``) that would otherwise silently fall back to a default.
Validation never touches the network: ``kilnwatch check-config`` must be safe to
run on a laptop far from the plant.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from common.models import StrictModel
from common.netaddr import check_host, check_url
from connectors import SourceConfig
from connectors.modbus_config import ModbusTag
from connectors.opcua_config import OpcuaTag
from rules.assets import Asset, RuleSettings, asset_problems


class ConfigError(Exception):
    """A configuration file that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class AgentSection(StrictModel):
    """``[agent]``: the site, storage, evaluation cadence and auditor-facing settings."""

    #: Site id: in MQTT topics and in every stored row.
    site: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    #: The DuckDB file (one per site); its directory is created at start.
    db_path: str = "data/kilnwatch.duckdb"
    #: How often the rule engine closes windows, computes KPIs and evaluates rules.
    evaluate_every_secs: float = Field(default=10, ge=0.1, le=3600)
    #: Samples reach DuckDB at least this often (a kill -9 loses at most this much).
    flush_every_secs: float = Field(default=5, gt=0, le=3600)
    #: Samples held in memory while DuckDB cannot take them (disk full, I/O errors); beyond this the
    #: oldest are dropped first and counted. About 60 bytes each: the default is about 120 MB.
    max_buffered_samples: int = Field(default=2_000_000, ge=10_000, le=50_000_000)
    #: Extra rule packs (TOML), loaded after the built-in cement pack; a re-declared id overrides.
    rule_files: list[str] = Field(default_factory=list)
    #: Raw samples kept in memory for the rule engine. The engine folds each tick's new samples into
    #: its own per-minute statistics (rolling rule windows live there), so this only has to cover
    #: current_window_secs, a few evaluation periods and late arrivals.
    window_secs: int = Field(default=300, ge=60)
    #: A change of the wall clock against the monotonic clock larger than this between two checks
    #: (every sample frame) is a step (NTP correcting a gateway after boot, a manual set): KPI windows
    #: are closed at the step and none is emitted for skipped time (agent/clock.py). Slewing is far
    #: slower (at most 0.5 ms/s).
    clock_step_secs: float = Field(default=2.0, ge=0.5, le=3600)
    #: Current values (MQTT ``kpi`` topic, terminal, rules without ``window``) are the mean of the
    #: raw samples of the last this-many seconds, so at most window_secs. Shorter = a step change is
    #: seen sooner (about current_window_secs / 2 for a threshold halfway, docs/rules.md) but noisier.
    current_window_secs: int = Field(default=60, ge=5, le=3600)
    #: Prometheus metrics on 127.0.0.1:PORT; 0 = disabled.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    #: Address the Prometheus endpoint listens on (loopback unless a scraper needs more).
    metrics_host: str = "127.0.0.1"
    #: A good sample older than this is reported as ``stale`` by the rule engine.
    stale_after_secs: float = Field(default=30, gt=0)
    #: Net WHR power off comprehensive electricity (docs/kpis.md §3: not confirmed by the standard).
    net_whr_in_comprehensive_power: bool = True
    #: Shift start times (UTC, HH:MM) for v_shift_report.
    shifts: list[str] = Field(default_factory=lambda: ["06:00", "14:00", "22:00"])
    #: Site altitude above sea level; GB 16780 grade-3 correction above 1500 m (docs/kpis.md §3).
    altitude_m: float = 0.0
    #: Mean site air pressure, used instead of the altitude for the grade-3 correction when given.
    site_pressure_pa: float | None = None
    #: Consistent copy of the database written by the agent for auditors, since no other process can
    #: open the live file while the agent writes it (docs/auditors.md); unset = off. Must be another
    #: file than db_path and its ``.wal``, also through symlinks; relative paths (here and in db_path)
    #: are relative to the working directory the agent runs in.
    snapshot_path: str | None = None
    #: How often the auditor snapshot is rewritten.
    snapshot_every_secs: float = Field(default=3600, ge=60)
    #: Raw samples stay in the live DuckDB file this long (fractions allowed), so recent data is fast to
    #: query and the file stays small; older whole UTC days move to the Parquet archive, the current UTC
    #: day never moves (docs/storage.md).
    samples_retention_days: float = Field(default=30, gt=0, le=36500)
    #: Directory of the Parquet archive of raw samples (Hive-partitioned ``date=YYYY-MM-DD``, one zstd
    #: file per day), so old days stay readable by any Parquet tool; unset = a directory ``archive``
    #: beside the database file. Must not be db_path, its ``.wal`` or snapshot_path; relative paths are
    #: relative to the working directory the agent runs in.
    archive_dir: str | None = None
    #: Per-tag 1-minute aggregates (``samples_1m`` table) are kept this long, so trends outlive the raw
    #: samples at a fraction of their size.
    aggregate_retention_days: float = Field(default=730, gt=0, le=36500)
    #: Optional budget for database + archive, in GB (1e9 bytes), so the agent cannot fill a shared
    #: disk; when exceeded the oldest archive days are deleted (never KPIs, alerts or the live database).
    max_disk_gb: float | None = Field(default=None, gt=0)
    #: Optional floor of free space on the database's volume, in GB (1e9 bytes), so the database never
    #: hits a full disk; below it the oldest archive days are deleted.
    min_free_disk_gb: float | None = Field(default=None, ge=0)
    #: UTC time (HH:MM) at which the daemon runs the daily tiering and compaction: pick a quiet hour,
    #: since both read a day of samples and write files.
    maintain_at: str = "02:30"
    #: Label of the money KPIs and report columns (e.g. ``CNY``, ``EUR``); a label only, no conversion.
    currency: str = Field(default="", max_length=8, pattern=r"^[A-Za-z$€¥£]*$")
    #: Indirect CO2 of purchased electricity, kg/kWh, for the power CO2 KPIs (docs/kpis.md §11 lists
    #: national and regional factors with their year and source); unset = no power CO2 KPIs.
    grid_co2_kg_per_kwh: float | None = Field(default=None, ge=0, le=2)
    #: Electricity price per kWh in currency, for the power cost KPIs; unset = no power cost KPIs.
    electricity_price_per_kwh: float | None = Field(default=None, ge=0, le=100)

    @field_validator("shifts")
    @classmethod
    def _shifts(cls, v: list[str]) -> list[str]:
        starts = []
        for s in v:
            hh_mm = _hh_mm(s)
            if hh_mm is None:
                raise ValueError(f"shift start {s!r} is not HH:MM")
            starts.append(hh_mm)
        if not v:
            raise ValueError("at least one shift start is needed")
        if len(set(starts)) != len(starts):
            raise ValueError("the same shift start is listed twice")
        return sorted(v)

    @field_validator("db_path")
    @classmethod
    def _db_path(cls, v: str) -> str:
        if v in ("", ":memory:"):
            raise ValueError("the agent stores everything in this file: give a file path")
        return v

    @field_validator("maintain_at")
    @classmethod
    def _maintain_at(cls, v: str) -> str:
        if _hh_mm(v) is None:
            raise ValueError(f"maintenance time {v!r} is not HH:MM (UTC)")
        return v

    @field_validator("archive_dir")
    @classmethod
    def _archive_dir(cls, v: str | None) -> str | None:
        # "" would silently mean the working directory; a NUL byte cannot be in any path
        if v is not None and (v == "" or "\0" in v):
            raise ValueError(
                "give a directory path, or leave archive_dir unset for 'archive' beside the database"
            )
        return v

    @field_validator("metrics_host")
    @classmethod
    def _metrics_host(cls, v: str) -> str:
        return check_host(v)

    @model_validator(mode="after")
    def _current_window_in_raw_samples(self) -> AgentSection:
        if self.current_window_secs > self.window_secs:
            raise _CrossRefError(
                [
                    f"agent.current_window_secs: {self.current_window_secs} s is longer than the raw samples"
                    f" kept (agent.window_secs = {self.window_secs}); raise window_secs or shorten it"
                ]
            )
        return self

    @model_validator(mode="after")
    def _snapshot_not_the_database(self) -> AgentSection:
        problem = _snapshot_path_problem(self.db_path, self.snapshot_path)
        if problem:
            raise _CrossRefError([f"agent.snapshot_path: {problem}"])
        return self

    @model_validator(mode="after")
    def _archive_not_a_database_file(self) -> AgentSection:
        problem = _archive_dir_problem(
            self.db_path, self.snapshot_path, self.archive_path(), self.archive_label()
        )
        if problem:
            raise _CrossRefError([f"agent.archive_dir: {problem}"])
        return self

    def archive_path(self) -> Path:
        """The Parquet archive directory: archive_dir, or ``archive`` beside the database file.

        Not resolved: a relative path stays relative to the working directory, like db_path, so
        the agent and ``check-config`` run from the same directory agree on it.
        """
        if self.archive_dir is not None:
            return Path(self.archive_dir)
        return Path(self.db_path).parent / "archive"

    def archive_label(self) -> str:
        """How an error line names the archive directory: the value given, or that it is the default.

        A problem with a directory nobody wrote in the file would otherwise be hard to place.
        """
        if self.archive_dir is not None:
            return repr(self.archive_dir)
        return f"the default {str(self.archive_path())!r} beside the database"


def _hh_mm(text: str) -> tuple[int, int] | None:
    """``(hour, minute)`` of a UTC time written ``HH:MM`` (ASCII digits), or None when it is not one."""
    hh, _, mm = text.partition(":")
    if not (hh.isascii() and hh.isdigit() and mm.isascii() and mm.isdigit()):
        return None
    hour, minute = int(hh), int(mm)
    return (hour, minute) if hour < 24 and minute < 60 else None


#: Appended to a path collision when a relative path took part in it, since the cause is then often
#: the working directory rather than the configuration text.
_RELATIVE = " (relative paths are taken from the working directory the agent runs in)"


def _same_file(a: Path, b: Path) -> bool:
    """Whether two resolved paths name one file: equal, or hard links / bind mounts of one inode."""
    return a == b or (a.exists() and b.exists() and os.path.samefile(a, b))


def _database_file_named(path: str, db_path: str) -> str | None:
    """Which file of the live database ``path`` names (its file or its WAL), for an error line, or None.

    Both paths are resolved like the agent opens them: relative to the current working directory,
    symlinks followed (a path that does not exist yet resolves through its parent directory).
    Local paths only, no network.
    """
    db = Path(db_path).resolve()
    target = Path(path).resolve()
    wal = db.with_name(db.name + ".wal")
    shown = "" if Path(db_path).is_absolute() and Path(path).is_absolute() else _RELATIVE
    if _same_file(target, db):
        return f"the database file itself (agent.db_path {db_path!r}, both {db}){shown}"
    if target == wal:
        return f"the database's write-ahead log {wal} (agent.db_path {db_path!r}){shown}"
    return None


def _snapshot_path_problem(db_path: str, snapshot_path: str | None) -> str | None:
    """Why ``snapshot_path`` would overwrite the live database (or its WAL), or None.

    The snapshot is written beside its target and renamed over it, so pointed at the database it
    silently replaces the file the agent writes.
    """
    if not snapshot_path or db_path == ":memory:":
        return None
    which = _database_file_named(snapshot_path, db_path)
    if which is None:
        return None
    replaced = "the live database" if which.startswith("the database file") else "it"
    return f"{snapshot_path!r} is {which}; the snapshot would replace {replaced}: choose another file"


def _archive_dir_problem(db_path: str, snapshot_path: str | None, archive: Path, label: str) -> str | None:
    """Why the archive directory ``archive`` (named ``label`` in the line) is one of the agent's files, or None.

    The archive is a directory the agent creates and fills with day files, so it can never also be the
    database, its WAL or the auditor snapshot: the agent would fail to create it, or the next snapshot
    would replace it. The default (``archive`` beside the database) is checked too, since a database
    or snapshot file itself named ``archive`` collides with it.
    """
    fix = "give agent.archive_dir a directory of its own"
    which = _database_file_named(str(archive), db_path)
    if which is not None:
        return f"{label} is {which}; the archive is a directory of Parquet files: {fix}"
    if snapshot_path:
        snap = Path(snapshot_path).resolve()
        if _same_file(archive.resolve(), snap):
            shown = "" if archive.is_absolute() and Path(snapshot_path).is_absolute() else _RELATIVE
            return (
                f"{label} is the auditor snapshot file (agent.snapshot_path {snapshot_path!r}, both {snap})"
                f"{shown}; each snapshot would replace the archive: {fix}"
            )
    return None


class MqttSection(StrictModel):
    """``[mqtt]``: the broker alerts and KPIs go to; absent = alerts stay in the outbox only."""

    #: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS; default ports 1883 / 8883).
    url: str = "mqtt://127.0.0.1:1883"
    #: First topic level: ``{prefix}/{site}/{asset}/alerts/{rule}`` (docs/mqtt.md).
    topic_prefix: str = Field(default="kilnwatch", pattern=r"^[A-Za-z0-9_./-]+$")
    #: MQTT client id; unset = ``kilnwatch-{site}``.
    client_id: str | None = None
    #: User name at the broker; the password comes from password_env or password_file.
    username: str | None = None
    #: Name of the environment variable that holds the password (never the password itself).
    password_env: str | None = None
    #: File whose content is the password (e.g. a systemd credential), used when no env var is named.
    password_file: str | None = None
    #: CA bundle that signs the broker's certificate (mqtts://); unset = the system's CAs.
    ca_file: str | None = None
    #: Client certificate (PEM) for brokers that authenticate clients by certificate.
    cert_file: str | None = None
    #: Private key of cert_file (PEM).
    key_file: str | None = None
    #: Skip broker certificate and host name checks. Only for a lab: it defeats TLS.
    tls_insecure: bool = False
    #: MQTT protocol version; ``auto`` tries 5 and falls back to 3.1.1.
    protocol: Literal["5", "3.1.1", "auto"] = "auto"
    #: Keep-alive interval: a dead broker connection is noticed within about 1.5x this.
    keepalive_secs: int = Field(default=30, ge=5)
    #: KPI snapshots are published when any KPI moves by more than this percentage ...
    kpi_deadband_pct: float = Field(default=1.0, ge=0)
    #: ... and at least this often (data time), as a heartbeat.
    kpi_heartbeat_secs: float = Field(default=60, gt=0)
    #: Reconnect delays to the broker grow from min to max (jittered, common/backoff.py).
    reconnect_min_secs: float = Field(default=1, gt=0)
    #: Upper bound of the broker reconnect delay.
    reconnect_max_secs: float = Field(default=60, gt=0)
    #: Delivered outbox rows older than this are pruned; undelivered rows are never pruned.
    outbox_retention_days: float = Field(default=7.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not (v.startswith("mqtt://") or v.startswith("mqtts://")):
            raise ValueError("must start with mqtt:// or mqtts://")
        return check_url(v)

    @model_validator(mode="after")
    def _password_not_inline(self) -> MqttSection:
        if self.password_env is not None and not self.password_env.replace("_", "").isalnum():
            raise ValueError("password_env names an environment variable, e.g. KILNWATCH_MQTT_PASSWORD")
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        if self.reconnect_min_secs > self.reconnect_max_secs:
            raise ValueError(
                f"reconnect_min_secs {self.reconnect_min_secs:g} is above reconnect_max_secs {self.reconnect_max_secs:g}"
            )
        return self

    def password(self) -> str | None:
        """Read the password from the environment or a file; never from the config text."""
        if self.password_env:
            return os.environ.get(self.password_env)
        if self.password_file:
            return Path(self.password_file).read_text().strip()
        return None


class Config(StrictModel):
    """The whole file: ``[agent]``, optional ``[mqtt]``, ``[[sources]]`` and ``[[assets]]``."""

    agent: AgentSection
    mqtt: MqttSection | None = None
    #: PLCs and servers to read (connectors/modbus_config.py, connectors/opcua_config.py).
    sources: list[SourceConfig] = Field(default_factory=list)
    #: What each signal means to the KPIs (rules/assets.py).
    assets: list[Asset] = Field(default_factory=list)

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
        problems.extend(asset_problems(self.assets, names))
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

    def rule_settings(self) -> RuleSettings:
        """The view of this site that the KPI library and the rule engine take (rules/assets.py)."""
        return RuleSettings(
            site=self.agent.site,
            assets=tuple(self.assets),
            tag_units=self.tag_units(),
            net_whr_in_comprehensive_power=self.agent.net_whr_in_comprehensive_power,
            altitude_m=self.agent.altitude_m,
            site_pressure_pa=self.agent.site_pressure_pa,
            stale_after_secs=self.agent.stale_after_secs,
            rule_files=tuple(self.agent.rule_files),
            current_window_secs=self.agent.current_window_secs,
            currency=self.agent.currency,
            grid_co2_kg_per_kwh=self.agent.grid_co2_kg_per_kwh,
            electricity_price_per_kwh=self.agent.electricity_price_per_kwh,
        )


class _CrossRefError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _is_branch(part: str) -> bool:
    """A union branch or discriminator tag in an error location: pydantic internals, not a key."""
    return part in ("modbus", "opcua") or not part.isidentifier() or part in ("str", "int", "float", "bool")


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _is_branch(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Any) -> str:
    msg: str = err["msg"]
    if err["type"] == "extra_forbidden":
        return "unknown key (typo?)"
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    if err["type"] == "literal_error":
        return msg.replace("Input should be", "must be")
    return msg


def _union_branch(loc: Sequence[int | str]) -> int | None:
    """Index of the first union-branch part of a location (``str | list[str]`` roles), if any."""
    for i, part in enumerate(loc):
        if isinstance(part, str) and part not in ("modbus", "opcua") and _is_branch(part):
            return i
    return None


def format_errors(exc: ValidationError) -> list[str]:
    """One line per problem, each naming the key path (``sources[1].tags[3].data_type: ...``).

    A value that fits no branch of a union (a tag role takes a name or a list of names) gives one
    error per branch; they are merged into one line, or, when the value had the shape of a list,
    only the list's own problems (``assets[0].fuel_tph[1]: ...``) are kept.
    """
    lines: list[str] = []
    unions: dict[str, list[tuple[str, str]]] = {}
    for err in exc.errors():
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _CrossRefError):
            lines.extend(ctx_err.problems)
            continue
        path = _loc(err["loc"]) or "(top level)"
        branch = _union_branch(err["loc"])
        if branch is not None:
            at = _loc(err["loc"][:branch]) or "(top level)"
            if at not in unions:
                unions[at] = []
                lines.append(at)  # placeholder, replaced below to keep the order of the errors
            unions[at].append((path, _message(err)))
            continue
        lines.append(f"{path}: {_message(err)}")
    out: list[str] = []
    for line in lines:
        if line not in unions:
            out.append(line)
            continue
        errs = unions.pop(line)
        deeper = [f"{path}: {msg}" for path, msg in errs if path != line]
        if deeper:
            out.extend(deeper)
        else:
            wanted = [msg.removeprefix("Input should be ") for _, msg in errs]
            out.append(f"{line}: Input should be " + " or ".join(dict.fromkeys(wanted)))
    return out


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
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{p}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{p}: not valid TOML ({exc})"]) from None
    except RecursionError:
        raise ConfigError([f"{p}: nested too deeply to be a kilnwatch configuration"]) from None
    try:
        return parse_config(data)
    except RecursionError:
        raise ConfigError([f"{p}: nested too deeply to be a kilnwatch configuration"]) from None
