"""``kilnwatch probe`` against real loopback servers (the CLI runs in a thread with its own loop)."""

from __future__ import annotations

import asyncio
import re
import struct
import tomllib

import pytest
from connector_testkit import TEST_NS, ModbusTestServer, OpcuaTestServer

from agent.cli import main
from connectors.modbus_config import ModbusTag
from connectors.opcua_config import OpcuaTag


def words(fmt: str, value: float) -> list[int]:
    raw = struct.pack(">" + fmt, value)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


async def run_cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


@pytest.mark.asyncio
async def test_probe_modbus_shows_every_order_with_both_address_bases(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hi, lo = words("f", 123.456)
    server = ModbusTestServer(holding={10: lo, 11: hi, 12: 0xFFFF})  # float32 stored CDAB
    await server.start()
    try:
        code = await run_cli(
            "probe",
            "modbus",
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--start",
            "10",
            "--count",
            "3",
        )
    finally:
        await server.stop()
    out = capsys.readouterr().out
    assert code == 0
    cdab = next(line for line in out.splitlines() if " CDAB " in line and "123.456" in line)
    assert "123.456" not in next(line for line in out.splitlines() if " ABCD " in line and " 10 " in line)
    assert cdab  # the little-word-order interpretation reveals the value
    first = next(line for line in out.splitlines() if "400011" in line)
    assert re.search(r"\b10\b.*\b11\b.*400011", first)  # 0-based, 1-based and Modicon side by side
    assert "-1" in out and "65535" in out  # 0xFFFF as int16 and uint16
    assert set(server.function_codes()) == {3}


@pytest.mark.asyncio
async def test_probe_modbus_toml_is_ready_to_paste(capsys: pytest.CaptureFixture[str]) -> None:
    hi, lo = words("f", 42.5)
    server = ModbusTestServer(input={0: lo, 1: hi, 2: lo, 3: hi})
    await server.start()
    try:
        code = await run_cli(
            "probe", "modbus", "--host", "127.0.0.1", "--port", str(server.port), "--table", "input",
            "--start", "0", "--count", "4", "--toml", "--type", "float32", "--order", "CDAB", "--prefix", "kiln1",
        )  # fmt: skip
    finally:
        await server.stop()
    captured = capsys.readouterr()
    assert code == 0
    # stdout is nothing but TOML (`--toml > tags.toml` is a valid file); the table is on stderr
    tags = [ModbusTag.model_validate(t) for t in tomllib.loads(captured.out)["sources"]["tags"]]
    assert [(t.name, t.address, t.table, t.word_order, t.byte_order) for t in tags] == [
        ("kiln1.input_0", 0, "input", "little", "big"),
        ("kiln1.input_2", 2, "input", "little", "big"),
    ]
    assert "# now 42.5" in captured.out
    assert "300001" in captured.err and "300001" not in captured.out


@pytest.mark.asyncio
async def test_probe_modbus_coils_show_bits(capsys: pytest.CaptureFixture[str]) -> None:
    server = ModbusTestServer(coils={5: True})
    await server.start()
    try:
        code = await run_cli(
            "probe", "modbus", "--host", "127.0.0.1", "--port", str(server.port), "--table", "coil",
            "--start", "4", "--count", "3",
        )  # fmt: skip
    finally:
        await server.stop()
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert re.search(r"\b5\b\s.*\b6\b\s.*000006\s.*\b1\b", next(line for line in lines if "000006" in line))
    assert server.function_codes() == {1}


def test_probe_modbus_connection_failure_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["probe", "modbus", "--host", "127.0.0.1", "--port", "1", "--start", "0", "--count", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("kilnwatch probe: cannot connect to 127.0.0.1:1")


def test_probe_modbus_rejects_a_range_past_65535(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["probe", "modbus", "--host", "127.0.0.1", "--start", "65535", "--count", "2"])
    assert code == 2 and "65535" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_probe_opcua_browses_node_ids_types_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    server = OpcuaTestServer()
    await server.start({"Feed": 312.5, "Fuel": 21.25})
    try:
        code = await run_cli("probe", "opcua", "--endpoint", server.endpoint, "--toml", "--prefix", "kiln1")
    finally:
        await server.stop()
    captured = capsys.readouterr()
    assert code == 0
    table = captured.err  # with --toml the human table is on stderr, stdout is only TOML
    assert f"nsu={TEST_NS};s=Feed" in table and "Double" in table and "312.5" in table
    assert "browse path" in table and "browse path" not in captured.out
    tags = [OpcuaTag.model_validate(t) for t in tomllib.loads(captured.out)["sources"]["tags"]]
    by_node = {t.node_id: t.name for t in tags}
    assert by_node[f"nsu={TEST_NS};s=Feed"] == "kiln1.plant.feed"
    assert by_node[f"nsu={TEST_NS};s=Fuel"] == "kiln1.plant.fuel"


def test_probe_opcua_connection_failure_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["probe", "opcua", "--endpoint", "opc.tcp://127.0.0.1:1/none", "--timeout-ms", "500"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith(
        "kilnwatch probe: cannot open a session with opc.tcp://127.0.0.1:1"
    )


@pytest.mark.asyncio
async def test_probe_opcua_without_toml_prints_the_table_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = OpcuaTestServer()
    await server.start({"Feed": 312.5})
    try:
        code = await run_cli("probe", "opcua", "--endpoint", server.endpoint)
    finally:
        await server.stop()
    captured = capsys.readouterr()
    assert code == 0
    assert f"nsu={TEST_NS};s=Feed" in captured.out and captured.err == ""


@pytest.mark.asyncio
async def test_probe_opcua_node_that_does_not_exist_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # exit 2, not 1: the command line names something the server does not have (like a malformed
    # --node); the device is reachable and retrying will not help
    server = OpcuaTestServer()
    await server.start({"Feed": 312.5})
    try:
        code = await run_cli("probe", "opcua", "--endpoint", server.endpoint, "--node", "ns=2;s=Nope")
    finally:
        await server.stop()
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == f"kilnwatch probe: node ns=2;s=Nope does not exist on {server.endpoint}\n"
