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
from rules.assets import Asset

MODELS: tuple[type[BaseModel], ...] = (
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
