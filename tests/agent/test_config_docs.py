"""docs/configuration.md is generated from the configuration models and must match them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.config import AgentSection, MqttSection
from agent.config_docs import DOC_PATH, field_comments, main, render
from connectors.base import SourceBase
from connectors.modbus_config import ModbusSource, ModbusTag
from connectors.opcua_config import OpcuaSource, OpcuaTag
from rules.assets import Asset, Fuel, FuelAnalysis

MODELS: tuple[type[BaseModel], ...] = (
    Fuel,
    FuelAnalysis,
    AgentSection,
    MqttSection,
    SourceBase,
    ModbusSource,
    ModbusTag,
    OpcuaSource,
    OpcuaTag,
    Asset,
)


def test_checked_in_reference_matches_the_models() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), "run: python -m agent.config_docs"
    assert main(["--check"]) == 0


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_key_has_a_meaning(model: type[BaseModel]) -> None:
    comments = field_comments(model)
    missing = [name for name in model.model_fields if not comments.get(name)]
    assert missing == [], f"add a '#:' comment above these fields of {model.__name__}"


def test_every_key_appears_with_its_file_spelling() -> None:
    text = render()
    for model in MODELS:
        for name, info in model.model_fields.items():
            assert f"| `{info.alias or name}` |" in text, name
    assert "| `register` | integer |" in text  # the file says register, the model says address
    assert "| `poll_interval_ms` | integer | ms | `1000` |" in text


def test_a_stale_reference_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n", encoding="utf-8")
    monkeypatch.setattr("agent.config_docs.DOC_PATH", stale)
    assert main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_four_fuel_example_is_a_valid_config_and_check_config_names_its_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new user copies the documented four-fuel kiln; with a source for its tags it is accepted."""
    import re
    import tomllib

    from agent.cli import main as cli_main

    text = DOC_PATH.read_text(encoding="utf-8")
    section = text[text.index("### Example: a kiln firing four fuels") :]
    (example,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)[:1]
    data = tomllib.loads(example)
    tags = sorted(set(re.findall(r'"((?:kiln1|cm1|lab)\.[a-z0-9_]+)"', example)))
    source = "\n".join(
        ["[[sources]]", 'name = "plc"', 'type = "modbus"', 'host = "127.0.0.1"']
        + [f'[[sources.tags]]\nname = "{t}"\nregister = {2 * i}' for i, t in enumerate(tags)]
    )
    path = tmp_path / "four_fuels.toml"
    path.write_text(example + "\n" + source + "\n", encoding="utf-8")
    assert len(data["assets"][0]["fuels"]) == 4
    assert cli_main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK (1 sources" in out
    assert "note: assets[0].fuels[2] (kiln1 tyres): default co2_kg_per_gj = 85" in out
    assert "note: assets[0].fuels[3] (kiln1 wood): default biogenic_fraction = 1" in out
    assert "fuels[0]" not in out  # coal gives both values
