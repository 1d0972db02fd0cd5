"""Pure parts of the MQTT link: reconnect backoff, KPI publish-by-exception, URL and payloads."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.mqtt_policies import KpiThrottle, MqttConfigError, kpi_payload, parse_url

T0 = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)


def at(secs: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=secs)


def test_first_snapshot_is_always_due() -> None:
    t = KpiThrottle(deadband_pct=1.0, heartbeat_secs=60)
    assert t.due("kiln1", at(0), {"clinker_tph": (120.0, "t/h")})


def test_move_within_deadband_is_not_published() -> None:
    t = KpiThrottle(deadband_pct=1.0, heartbeat_secs=60)
    t.due("kiln1", at(0), {"clinker_tph": (120.0, "t/h"), "specific_heat_kcal_per_kg_clinker": (760.0, "")})
    # 1 % of 120 = 1.2; a move of 1.1 stays inside the band
    assert not t.due(
        "kiln1", at(10), {"clinker_tph": (121.1, "t/h"), "specific_heat_kcal_per_kg_clinker": (760.0, "")}
    )


def test_move_beyond_deadband_of_any_kpi_is_published() -> None:
    t = KpiThrottle(deadband_pct=1.0, heartbeat_secs=60)
    t.due("kiln1", at(0), {"clinker_tph": (120.0, "t/h"), "whr_net_kw": (8000.0, "kW")})
    assert t.due("kiln1", at(10), {"clinker_tph": (120.0, "t/h"), "whr_net_kw": (8081.0, "kW")})


def test_deadband_is_measured_from_the_last_published_value() -> None:
    """Slow drift still publishes: 0.6 % twice is 1.2 % from what subscribers last saw."""
    t = KpiThrottle(deadband_pct=1.0, heartbeat_secs=600)
    t.due("kiln1", at(0), {"clinker_tph": (100.0, "t/h")})
    assert not t.due("kiln1", at(10), {"clinker_tph": (100.6, "t/h")})
    assert t.due("kiln1", at(20), {"clinker_tph": (101.2, "t/h")})


def test_heartbeat_publishes_unchanged_kpis() -> None:
    t = KpiThrottle(deadband_pct=1.0, heartbeat_secs=60)
    k = {"clinker_tph": (120.0, "t/h")}
    assert t.due("kiln1", at(0), k)
    assert not t.due("kiln1", at(59), k)
    assert t.due("kiln1", at(60), k)
    assert not t.due("kiln1", at(100), k)
    assert t.due("kiln1", at(120), k)


def test_assets_are_throttled_independently() -> None:
    t = KpiThrottle(deadband_pct=1.0, heartbeat_secs=60)
    assert t.due("kiln1", at(0), {"clinker_tph": (120.0, "t/h")})
    assert t.due("cement_mill1", at(1), {"specific_power_kwh_per_t": (32.0, "kWh/t")})
    assert not t.due("kiln1", at(2), {"clinker_tph": (120.0, "t/h")})


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"a": (1.0, "t/h")}, {"a": (None, "t/h")}),  # value lost
        ({"a": (None, "t/h")}, {"a": (1.0, "t/h")}),  # value back
        ({"a": (0.0, "kW")}, {"a": (0.001, "kW")}),  # any move away from zero
        ({"a": (1.0, "t/h")}, {"a": (1.0, "t/h"), "b": (2.0, "kW")}),  # new KPI
        ({"a": (1.0, "t/h")}, {"a": (1.0, "kg/h")}),  # unit changed
    ],
)
def test_structural_changes_are_published(
    before: dict[str, tuple[float | None, str]], after: dict[str, tuple[float | None, str]]
) -> None:
    t = KpiThrottle(deadband_pct=50.0, heartbeat_secs=600)
    t.due("x", at(0), before)
    assert t.due("x", at(1), after)


def test_zero_deadband_publishes_every_change_only() -> None:
    t = KpiThrottle(deadband_pct=0.0, heartbeat_secs=600)
    t.due("x", at(0), {"a": (1.0, "")})
    assert not t.due("x", at(1), {"a": (1.0, "")})
    assert t.due("x", at(2), {"a": (1.0000001, "")})


def test_clock_going_backwards_publishes() -> None:
    t = KpiThrottle(deadband_pct=1.0, heartbeat_secs=60)
    t.due("x", at(100), {"a": (1.0, "")})
    assert t.due("x", at(0), {"a": (1.0, "")})


def test_kpi_payload_has_contract_shape_with_null_for_non_finite() -> None:
    p = kpi_payload(
        "plant1",
        "kiln1",
        at(0),
        {"clinker_tph": (120.5, "t/h"), "co2_kg_per_t_clinker": (float("nan"), "kg/t")},
    )
    assert p == {
        "ts": "2026-03-01T06:00:00Z",
        "site": "plant1",
        "asset": "kiln1",
        "kpis": {
            "clinker_tph": {"value": 120.5, "unit": "t/h"},
            "co2_kg_per_t_clinker": {"value": None, "unit": "kg/t"},
        },
    }


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://127.0.0.1", "127.0.0.1", 1883, False),
        ("mqtts://broker.plant.local", "broker.plant.local", 8883, True),
        ("mqtt://10.0.0.5:11883", "10.0.0.5", 11883, False),
        ("mqtts://[::1]:8884", "::1", 8884, True),
    ],
)
def test_broker_url_defaults_port_by_scheme(url: str, host: str, port: int, tls: bool) -> None:
    a = parse_url(url)
    assert (a.host, a.port, a.tls) == (host, port, tls)


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "mqtt://host:99999"])
def test_bad_broker_url_is_a_config_error(url: str) -> None:
    with pytest.raises(MqttConfigError):
        parse_url(url)
