"""Local checks of a configuration that pydantic cannot make: the files it names and the database path.

``check-config`` must reject what ``run`` would fail on at start, without connecting to any device
(docs/configuration.md). Everything here looks only at the local file system: the database path
(not a directory, a device or a kernel pseudo-file, its directory creatable), the Parquet archive
directory (writable, or creatable), TLS certificates and keys, password files and rule packs. Each
problem is one line naming the key path, like a model error.
"""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

from agent.config import Config
from connectors.modbus_config import REGISTER_WIDTH, ModbusSource
from connectors.opcua_config import OpcuaSource

#: Kernel pseudo-file systems: a "database" there is a configuration mistake.
_PSEUDO = ("/proc", "/sys", "/dev")


def _readable_file(key: str, path: str | None) -> list[str]:
    if path is None:
        return []
    p = Path(path)
    if not p.exists():
        return [f"{key}: {path!r} does not exist"]
    if not p.is_file():
        return [f"{key}: {path!r} is not a regular file"]
    if not os.access(p, os.R_OK):
        return [f"{key}: {path!r} is not readable by this user"]
    return []


def _pseudo_fs(resolved: Path) -> str | None:
    """The kernel pseudo-file system (``/proc``, ``/sys``, ``/dev``) a resolved path lies under, or None."""
    return next((d for d in _PSEUDO if str(resolved) == d or str(resolved).startswith(d + "/")), None)


def _creatable(resolved: Path) -> str | None:
    """Why a path that does not exist yet could not be created, or None.

    The agent creates missing directories itself (the database's at start, the archive's when it
    first writes there), so what matters is the nearest one that already exists: it must be a
    directory this user can write and enter.
    """
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{str(parent)!r} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create it, {str(parent)!r} is not writable by this user"
    return None


def db_path_problem(db_path: str) -> str | None:
    """Why the agent could not keep its database at ``db_path``, or None."""
    p = Path(db_path).expanduser()
    resolved = p.resolve()
    if (pseudo := _pseudo_fs(resolved)) is not None:
        return f"{db_path!r} is under {pseudo}: give a file on a disk"
    if p.exists():
        mode = p.stat().st_mode
        if stat.S_ISDIR(mode):
            return f"{db_path!r} is a directory: give a file path, e.g. {str(p / 'kilnwatch.duckdb')!r}"
        if not stat.S_ISREG(mode):
            return f"{db_path!r} is not a regular file (a device or pipe)"
        if not os.access(p, os.R_OK | os.W_OK):
            return f"{db_path!r} is not readable and writable by this user"
        return None
    if (why := _creatable(resolved)) is not None:
        return f"{db_path!r}: {why}"
    return None


def archive_dir_problem(archive: Path, label: str) -> str | None:
    """Why the agent could not keep its Parquet archive in ``archive`` (``label`` names it), or None.

    The daily tiering writes there long after start, at agent.maintain_at: a directory it cannot
    create or write would only fail then, at night, so it is refused up front like the database.
    """
    resolved = archive.resolve()
    if (pseudo := _pseudo_fs(resolved)) is not None:
        return f"{label} is under {pseudo}: give a directory on a disk"
    if resolved.exists():
        if not resolved.is_dir():
            return f"{label} exists and is not a directory: give a directory path"
        if not os.access(resolved, os.W_OK | os.X_OK):
            return f"{label} is not writable by this user"
        return None
    if (why := _creatable(resolved)) is not None:
        return f"{label}: {why}"
    return None


def local_problems(cfg: Config) -> list[str]:
    """Every problem with the local files the configuration names (one line each, key path first)."""
    problems: list[str] = []
    db_problem = db_path_problem(cfg.agent.db_path)
    if db_problem is not None:
        problems.append(f"agent.db_path: {db_problem}")
    if cfg.agent.snapshot_path and (why := db_path_problem(cfg.agent.snapshot_path)) is not None:
        problems.append(f"agent.snapshot_path: {why}")
    # the default archive sits beside the database: when db_path is unusable, its line says it all
    if cfg.agent.archive_dir is not None or db_problem is None:
        why = archive_dir_problem(cfg.agent.archive_path(), cfg.agent.archive_label())
        if why is not None:
            problems.append(f"agent.archive_dir: {why}")
    if cfg.mqtt is not None:
        m = cfg.mqtt
        for key in ("ca_file", "cert_file", "key_file", "password_file"):
            problems += _readable_file(f"mqtt.{key}", getattr(m, key))
        if (m.cert_file is None) != (m.key_file is None):
            problems.append("mqtt.cert_file: a client certificate needs both cert_file and key_file")
    for i, src in enumerate(cfg.sources):
        if isinstance(src, OpcuaSource):
            for key in ("cert_file", "key_file", "server_cert_file", "password_file"):
                problems += _readable_file(f"sources[{i}].{key}", getattr(src, key))
    for j, f in enumerate(cfg.agent.rule_files):
        problems += _readable_file(f"agent.rule_files[{j}]", f)
    return problems


#: Polled this slowly or slower, a minute aggregate row is larger than the raw samples it summarises
#: (measured: ~31 B per samples_1m row, ~9 B per raw sample; BENCHMARKS.md, storage tiers).
SLOW_POLL_SECS = 15.0


def warnings(cfg: Config) -> list[str]:
    """Settings that are legal but worth a second look (printed by check-config, logged by run)."""
    out: list[str] = []
    if cfg.agent.metrics_port and cfg.agent.metrics_host not in ("127.0.0.1", "::1", "localhost"):
        out.append(
            f"agent.metrics_host: {cfg.agent.metrics_host!r} exposes /metrics to the network "
            "(keep 127.0.0.1 unless a scraper needs it)"
        )
    for i, src in enumerate(cfg.sources):
        if isinstance(src, OpcuaSource) and src.username and src.security == "None":
            out.append(f"sources[{i}].allow_plaintext_password: the OPC UA password is sent in clear")
        if isinstance(src, ModbusSource):
            spans = sorted(
                (t.table, t.address, t.address + REGISTER_WIDTH[t.data_type] - 1, t.name) for t in src.tags
            )
            for (tab, _a0, a1, n), (tab2, b0, _b1, m) in itertools.pairwise(spans):
                if tab == tab2 and b0 <= a1:
                    out.append(
                        f"sources[{i}].tags: {n!r} and {m!r} overlap in the {tab} table at register {b0} "
                        "(fine if the same registers are read as two types)"
                    )
    enabled = [s for s in cfg.sources if s.enabled]
    fastest = min((s.poll_interval_ms for s in enabled), default=0) / 1000
    a = cfg.agent
    if fastest >= SLOW_POLL_SECS and a.aggregate_retention_days > a.samples_retention_days:
        out.append(
            f"agent.aggregate_retention_days: every source polls every {fastest:g} s or slower, so a "
            "samples_1m row (about 31 bytes) takes more room than the samples of its minute (about 9 "
            f"bytes each); {a.aggregate_retention_days:g} days of it can outgrow the raw data: consider "
            f"keeping it no longer than agent.samples_retention_days ({a.samples_retention_days:g}) "
            "(docs/storage.md)"
        )
    return out
