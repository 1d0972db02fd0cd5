"""What the PLC says about the quality of a served value, and which transmitters ``sensor_freeze`` sticks.

Owns :class:`SensorStatus` (served as an OPC UA StatusCode by :mod:`simulator.opcua_server`),
the sample quality the agent stores for each status (docs/auditors.md, ``samples.quality``) and the
frozen signals with the time after which the PLC declares a noticed one failed (docs/simulator.md,
``sensor_freeze``).
"""

from __future__ import annotations

import enum
from typing import Final


class SensorStatus(enum.IntEnum):
    """Quality the PLC attaches to a served value (OPC UA StatusCode on the wire)."""

    GOOD = 0
    UNCERTAIN_LAST_USABLE = 1  # PLC detected a failed input and holds the last value
    UNCERTAIN_EU_EXCEEDED = 2  # transmitter saturated at its measuring range
    BAD_SENSOR_FAILURE = 3  # input declared failed (OPC UA serves no value)


#: Sample quality stored by the agent for each status (docs/auditors.md).
STATUS_QUALITY: Final = {
    SensorStatus.GOOD: "good",
    SensorStatus.UNCERTAIN_LAST_USABLE: "stale",
    SensorStatus.UNCERTAIN_EU_EXCEEDED: "bad",
    SensorStatus.BAD_SENSOR_FAILURE: "bad",
}

#: Signals frozen by ``sensor_freeze``, and whether the PLC notices (status) or not.
FROZEN_SIGNALS: Final = (
    ("kiln", "ph_exit_o2_pct", False),
    ("kiln", "clinker_temp_c", True),
    ("whr", "aqc_inlet_temp_c", False),
)
#: A noticed frozen input turns from Uncertain_LastUsableValue to Bad_SensorFailure after this long.
FREEZE_BAD_AFTER_SECS: Final = 1800.0
