"""The simulated PLC's Modbus TCP face (pymodbus 3.16, ``pymodbus.simulator.SimDevice`` API).

One device (unit id 1 by default) with four separate tables — coils, discrete inputs, holding and
input registers — sized from the tag map; every address up to the highest mapped one is readable
(reserved registers read 0), beyond it the device answers ILLEGAL ADDRESS like a real PLC. Other
unit ids get exception 0x0B (gateway target failed to respond). Values are pushed as whole register
images through ``SimCore.async_setValues`` once per tick. Every function code received is counted
(``function_codes``) so tests can prove an agent never wrote.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulator.listen import ListenError, bind_failure, quiet_bind_failure
from simulator.registers import BoolArray, RegisterCodec, U16Array

log = logging.getLogger(__name__)

# Function codes used to write each table through SimCore (the datastore maps them to tables).
_TABLE_FC = {"coil": 5, "discrete": 2, "holding": 16, "input": 4}
_ANY_UNIT = 0


async def _gateway_no_response(
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    current_registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """Answer requests to unknown unit ids like a Modbus gateway without that device behind it."""
    return ExcCodes.GATEWAY_NO_RESPONSE


def _bits(size: int) -> list[SimData]:
    return [SimData(address=0, count=max(size, 1), values=False, datatype=DataType.BITS)]


def _regs(size: int) -> list[SimData]:
    return [SimData(address=0, count=max(size, 1), values=0, datatype=DataType.REGISTERS)]


class ModbusPlc:
    """A Modbus TCP server serving the plant's register image; restartable on the same port."""

    def __init__(
        self, codec: RegisterCodec, *, host: str = "127.0.0.1", port: int = 0, unit_id: int = 1
    ) -> None:
        if not 1 <= unit_id <= 247:
            raise ValueError("unit_id must be 1..247")
        self.codec = codec
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.function_codes: Counter[int] = Counter()
        self._server: ModbusTcpServer | None = None
        self._last: dict[str, U16Array | BoolArray] | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.function_codes[pdu.function_code] += 1
        return pdu

    def _devices(self) -> list[SimDevice]:
        s = self.codec.sizes
        plc = SimDevice(
            id=self.unit_id,
            simdata=(_bits(s["coil"]), _bits(s["discrete"]), _regs(s["holding"]), _regs(s["input"])),
        )
        anything = SimDevice(
            id=_ANY_UNIT,
            simdata=(_bits(s["coil"]), _bits(s["discrete"]), _regs(s["holding"]), _regs(s["input"])),
            action=_gateway_no_response,
        )
        return [plc, anything]

    async def start(self) -> int:
        """Listen (port 0 = ephemeral, remembered for restarts); returns the actual port."""
        if self._server is not None:
            return self.port
        server = ModbusTcpServer(self._devices(), address=(self.host, self.port), trace_pdu=self._trace_pdu)
        self._server = server
        # the register image first, then listen: a client reconnecting at once after a restart
        # must read the plant's values, never a zeroed image
        try:
            if self._last is not None:
                await self.update(self._last)
            with quiet_bind_failure("pymodbus.logging", "Failed to start server"):
                await server.serve_forever(background=True)
        except RuntimeError as exc:
            # pymodbus logs the OSError and raises "Could not start listen" without it
            self._server = None
            if server.transport is None:
                raise ListenError(
                    self.host, self.port, "Modbus TCP", bind_failure(self.host, self.port)
                ) from exc
            raise
        except BaseException:
            self._server = None
            raise
        sockets = getattr(server.transport, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("Modbus TCP listening on %s:%d (unit %d)", self.host, self.port, self.unit_id)
        return self.port

    async def stop(self) -> None:
        """Close the listener and every client connection (clients see a reset, then refusal)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
            log.info("Modbus TCP on port %d stopped", self.port)

    async def update(self, images: dict[str, U16Array | BoolArray]) -> None:
        """Replace the register/bit image of every table (one datastore call per table)."""
        self._last = images
        server = self._server
        if server is None:
            return
        context = server.context
        for table, fc in _TABLE_FC.items():
            img = images[table]
            if not len(img):
                continue
            values: list[int] | list[bool] = (
                img.tolist() if img.dtype != np.bool_ else [bool(b) for b in img.tolist()]
            )
            result = await context.async_setValues(self.unit_id, fc, 0, values)
            if result:
                raise RuntimeError(f"register image for {table} does not fit the device ({result!r})")
