"""``kilnwatch probe``: look at a device directly while commissioning, before writing the config.

* ``kilnwatch probe modbus --host H --start A --count N`` reads a register range once and shows
  every data type in all four byte/word orders, with 0-based, 1-based and Modicon-style
  addresses side by side, so the value the HMI shows can be recognised and its layout named.
* ``kilnwatch probe opcua --endpoint URL`` browses the address space and prints node ids (in the
  ``nsu=`` form that survives server restarts), data types and current values.

Both print ready-to-paste ``[[sources.tags]]`` tables with ``--toml``: then stdout carries only the
TOML (``> tags.toml`` is a valid file) and the human table goes to stderr. Only read requests are
sent. A connection failure is one line on stderr and exit code 1; a request the device cannot
answer because the command line names something that is not there (``--node`` that does not exist,
a range past 65535) is exit code 2, like any other wrong argument: retrying will not help.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from common.cli import EXIT_OK, EXIT_USAGE, CliError
from connectors.base import ConnectorError
from connectors.modbus_codec import BIT_TABLES, DATA_TYPES, ORDERS, decode_all_orders
from connectors.modbus_config import REGISTER_WIDTH

#: Modicon-style reference offsets (0xxxx coils, 1xxxx discrete inputs, 3xxxx input, 4xxxx holding).
MODICON_BASE = {"coil": 0, "discrete": 100_000, "input": 300_000, "holding": 400_000}
_NUMERIC_TYPES = [t for t in DATA_TYPES if t != "bool"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``kilnwatch probe modbus|opcua``."""
    p = sub.add_parser(
        "probe",
        help="read a Modbus or OPC UA device directly (commissioning aid)",
        description="Read a device directly to find registers and node ids; prints config snippets.",
    )
    protocols = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)

    m = protocols.add_parser(
        "modbus",
        help="read a register range and show it in every data type and byte/word order",
        description="Read a register range once (read function codes only) and show every interpretation.",
    )
    m.add_argument("--host", required=True, help="device address")
    m.add_argument("--port", type=int, default=502, help="TCP port (default 502)")
    m.add_argument("--unit", type=int, default=1, help="unit (slave) id (default 1)")
    m.add_argument(
        "--table",
        choices=["holding", "input", "coil", "discrete"],
        default="holding",
        help="register table: holding (FC3), input (FC4), coil (FC1), discrete (FC2); default holding",
    )
    m.add_argument("--start", type=int, required=True, help="first address, 0-based as on the wire")
    m.add_argument("--count", type=int, required=True, help="number of registers (or bits) to read")
    m.add_argument("--timeout-ms", type=int, default=2000, help="connect and read timeout (default 2000)")
    m.add_argument("--toml", action="store_true", help="print [[sources.tags]] for the range")
    m.add_argument(
        "--type", dest="data_type", choices=DATA_TYPES, default="float32", help="data type for --toml"
    )
    m.add_argument("--order", choices=list(ORDERS), default="ABCD", help="byte/word order for --toml")
    m.add_argument("--prefix", default="plc", help="asset part of the tag names for --toml")
    m.set_defaults(func=cmd_modbus)

    o = protocols.add_parser(
        "opcua",
        help="browse an OPC UA server and show node ids, data types and values",
        description="Browse the address space below a node and print what a tag config needs.",
    )
    o.add_argument("--endpoint", required=True, help="opc.tcp://host:port/path")
    o.add_argument("--node", default="i=85", help="start node (default: the Objects folder, i=85)")
    o.add_argument("--depth", type=int, default=3, help="levels to browse (default 3)")
    o.add_argument("--timeout-ms", type=int, default=4000, help="timeout of each request (default 4000)")
    o.add_argument(
        "--security",
        choices=["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"],
        default="None",
        help="message security (default None); the others need --cert-file and --key-file",
    )
    o.add_argument("--cert-file", metavar="PEM", help="client application instance certificate")
    o.add_argument("--key-file", metavar="PEM", help="private key of --cert-file")
    o.add_argument(
        "--server-cert-file", metavar="FILE", help="the server's certificate, pinned (default: as presented)"
    )
    o.add_argument("--username", help="user name identity (default anonymous); password via --password-env")
    o.add_argument("--password-env", help="environment variable holding the password")
    o.add_argument("--toml", action="store_true", help="print [[sources.tags]] for numeric variables")
    o.add_argument("--prefix", default="plc", help="asset part of the tag names for --toml")
    o.set_defaults(func=cmd_opcua)


def _console(*, toml: bool = False) -> Console:
    """Where the human table goes: stdout, or stderr when stdout carries the ``--toml`` snippet."""
    stream = sys.stderr if toml else sys.stdout
    # a pipe or a file gets the full table rather than 80 columns of ellipses
    return Console(file=stream, width=None if stream.isatty() else 200)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return ""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.7g}"


# ------------------------------------------------------------------------------ modbus
def cmd_modbus(args: argparse.Namespace) -> int:
    from connectors.modbus import read_range

    if args.count < 1 or args.start < 0 or args.start + args.count > 65536:
        raise CliError("--start/--count must lie within addresses 0..65535", EXIT_USAGE)
    if args.table in BIT_TABLES and args.toml and args.data_type != "bool":
        args.data_type = "bool"
    try:
        values = asyncio.run(
            read_range(
                args.host,
                args.port,
                unit=args.unit,
                table=args.table,
                start=args.start,
                count=args.count,
                timeout_secs=args.timeout_ms / 1000,
            )
        )
    except ConnectorError as exc:
        raise CliError(str(exc)) from None
    console = _console(toml=args.toml)
    if args.table in BIT_TABLES:
        console.print(bit_table(args.table, args.start, [bool(v) for v in values]))
    else:
        console.print(register_table(args.table, args.start, [int(v) for v in values]))
    if args.toml:
        print(modbus_toml(args.table, args.start, values, args.data_type, args.order, args.prefix))
    return EXIT_OK


def bit_table(table: str, start: int, bits: Sequence[bool]) -> Table:
    t = Table(title=f"{table} bits {start}..{start + len(bits) - 1}", title_justify="left")
    for col in ("0-based", "1-based", "Modicon", "value"):
        t.add_column(col, justify="right")
    for i, bit in enumerate(bits):
        addr = start + i
        t.add_row(str(addr), str(addr + 1), f"{MODICON_BASE[table] + addr + 1:06d}", "1" if bit else "0")
    return t


def register_table(table: str, start: int, words: Sequence[int]) -> Table:
    """Every interpretation of ``words``: one row per address and byte/word order."""
    views = {dt: decode_all_orders(words, dt) for dt in _NUMERIC_TYPES}
    t = Table(
        title=f"{table} registers {start}..{start + len(words) - 1} "
        "(ABCD = big-endian words and bytes; CDAB = word_order little; BADC = byte_order little)",
        title_justify="left",
    )
    for col in ("0-based", "1-based", "Modicon", "hex", "order", *_NUMERIC_TYPES):
        t.add_column(col, justify="right")
    for i, word in enumerate(words):
        addr = start + i
        for k, order in enumerate(ORDERS):
            first = k == 0
            t.add_row(
                str(addr) if first else "",
                str(addr + 1) if first else "",
                f"{MODICON_BASE[table] + addr + 1:06d}" if first else "",
                f"{word:04X}" if first else "",
                order,
                *(_fmt(float(views[dt][order][i])) for dt in _NUMERIC_TYPES),
                end_section=k == len(ORDERS) - 1,
            )
    return t


def modbus_toml(
    table: str, start: int, values: Sequence[int] | Sequence[bool], data_type: str, order: str, prefix: str
) -> str:
    """``[[sources.tags]]`` for consecutive values of ``data_type`` in the range read."""
    word_order, byte_order = ORDERS[order]
    width = 1 if table in BIT_TABLES else REGISTER_WIDTH[data_type]
    decoded = (
        np.asarray(values, dtype=np.float64)
        if table in BIT_TABLES
        else decode_all_orders([int(v) for v in values], data_type)[order]
    )
    lines: list[str] = []
    for i in range(0, len(values) - width + 1, width):
        addr = start + i
        lines += [
            "[[sources.tags]]",
            f'name = "{_name_part(prefix)}.{table}_{addr}"  # now {_fmt(float(decoded[i]))}',
            f"register = {addr}",
            f'table = "{table}"',
            f'data_type = "{data_type}"',
        ]
        if width > 1:
            lines += [f'word_order = "{word_order}"', f'byte_order = "{byte_order}"']
        elif data_type != "bool" and byte_order != "big":
            lines.append(f'byte_order = "{byte_order}"')
        lines += ['unit = ""', ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ opcua
def cmd_opcua(args: argparse.Namespace) -> int:
    import os

    from connectors.opcua import UnknownNodeError, browse

    if args.depth < 1:
        raise CliError("--depth must be at least 1", EXIT_USAGE)
    password = os.environ.get(args.password_env) if args.password_env else None
    try:
        nodes = asyncio.run(
            browse(
                args.endpoint,
                start=args.node,
                depth=args.depth,
                timeout_secs=args.timeout_ms / 1000,
                security=args.security,
                cert_file=args.cert_file,
                key_file=args.key_file,
                server_cert_file=args.server_cert_file,
                username=args.username,
                password=password,
            )
        )
    except UnknownNodeError as exc:
        # a wrong --node, not a device problem: exit 2 like a malformed one
        raise CliError(str(exc), EXIT_USAGE) from None
    except ConnectorError as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    console = _console(toml=args.toml)
    t = Table(title=f"{args.endpoint} below {args.node}", title_justify="left")
    for col in ("browse path", "node id", "class", "data type", "value", "status"):
        t.add_column(col, justify="right" if col == "value" else "left")
    for n in nodes:
        t.add_row(n.path, n.portable_id, n.node_class, n.data_type, _show(n.value), n.status)
    console.print(t)
    if args.toml:
        print(opcua_toml(nodes, args.prefix))
    return EXIT_OK


def _show(value: Any) -> str:
    if value is None:
        return ""
    text = f"{value:.7g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _name_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "plc"


def opcua_toml(nodes: Sequence[Any], prefix: str) -> str:
    """``[[sources.tags]]`` for every variable holding a number or a boolean (not the server's own)."""
    lines: list[str] = []
    used: set[str] = set()
    for n in nodes:
        if n.node_class != "Variable" or not isinstance(n.value, bool | int | float):
            continue
        if not n.portable_id.startswith(("nsu=", "ns=")):  # namespace 0: server diagnostics
            continue
        signal = ".".join(_name_part(p) for p in n.path.split("/")).lower()
        name = f"{_name_part(prefix)}.{signal}"
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        lines += [
            "[[sources.tags]]",
            f'name = "{name}"  # {n.data_type} = {_show(n.value)}',
            f'node_id = "{n.portable_id}"',
            'unit = ""',
            "",
        ]
    return "\n".join(lines)
