"""`--config aitbc.toml`: flag > environment variable > file > default; unknown keys refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import node.cli
from node.cli import cli

NO_ENV: dict[str, str | None] = {
    "AITBC_PORT": None,
    "AITBC_HOST": None,
    "AITBC_CONFIG": None,
    "AITBC_DATA_DIR": None,
    "AITBC_LOG_FORMAT": None,
    "AITBC_METRICS": None,
    "AITBC_NODE": None,
}


@pytest.fixture
def captured_start(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(node.cli, "run_start", lambda **kwargs: calls.append(kwargs))
    return calls


def invoke(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={**NO_ENV, **env})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aitbc.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_applies_without_flag_env_or_file(captured_start: list[dict[str, Any]]) -> None:
    assert invoke("start").exit_code == 0
    assert captured_start[-1]["port"] == 8001


def test_the_file_wins_over_the_default(tmp_path: Path, captured_start: list[dict[str, Any]]) -> None:
    cfg = write(tmp_path, 'port = 9001\nlog-format = "json"\nmetrics = "off"\n')
    result = invoke("start", "--config", str(cfg))
    assert result.exit_code == 0, result.output
    assert captured_start[-1]["port"] == 9001
    assert captured_start[-1]["log_format"] == "json"
    assert captured_start[-1]["metrics"] == "off"


def test_the_environment_wins_over_the_file(tmp_path: Path, captured_start: list[dict[str, Any]]) -> None:
    cfg = write(tmp_path, "port = 9001\n")
    assert invoke("start", "--config", str(cfg), AITBC_PORT="9002").exit_code == 0
    assert captured_start[-1]["port"] == 9002


def test_a_flag_wins_over_the_environment_and_the_file(tmp_path: Path, captured_start: list[dict[str, Any]]) -> None:
    cfg = write(tmp_path, "port = 9001\n")
    assert invoke("start", "--config", str(cfg), "--port", "9003", AITBC_PORT="9002").exit_code == 0
    assert captured_start[-1]["port"] == 9003


def test_the_file_can_be_named_by_env_or_before_the_command(
    tmp_path: Path, captured_start: list[dict[str, Any]]
) -> None:
    cfg = write(tmp_path, 'host = "0.0.0.0"\n')
    assert invoke("start", AITBC_CONFIG=str(cfg)).exit_code == 0
    assert captured_start[-1]["host"] == "0.0.0.0"
    assert invoke("--config", str(cfg), "start").exit_code == 0
    assert captured_start[-1]["host"] == "0.0.0.0"


def test_a_command_table_overrides_top_level_values_for_that_command(
    tmp_path: Path, captured_start: list[dict[str, Any]]
) -> None:
    cfg = write(tmp_path, "port = 9001\n[start]\nport = 9005\n")
    assert invoke("start", "--config", str(cfg)).exit_code == 0
    assert captured_start[-1]["port"] == 9005


def test_relative_paths_in_the_file_are_taken_from_its_directory(
    tmp_path: Path, captured_start: list[dict[str, Any]]
) -> None:
    (tmp_path / "etc").mkdir()
    cfg = tmp_path / "etc" / "aitbc.toml"
    cfg.write_text('data_dir = "../var/aitbc"\n', encoding="utf-8")
    assert invoke("start", "--config", str(cfg)).exit_code == 0
    assert Path(captured_start[-1]["data_dir"]).resolve() == (tmp_path / "var" / "aitbc").resolve()


def test_unknown_keys_are_an_error_naming_them(tmp_path: Path, captured_start: list[dict[str, Any]]) -> None:
    cfg = write(tmp_path, 'prot = 9001\nhots = "x"\nport = 1\n[verify]\nport = 2\n')
    result = invoke("start", "--config", str(cfg))
    assert result.exit_code != 0
    assert captured_start == []
    assert "'hots'" in result.output and "'prot'" in result.output and "'verify.port'" in result.output
    assert "Traceback" not in result.output


def test_a_malformed_file_is_a_clear_error(tmp_path: Path, captured_start: list[dict[str, Any]]) -> None:
    cfg = write(tmp_path, "port = = 1\n")
    result = invoke("start", "--config", str(cfg))
    assert result.exit_code != 0 and "not valid TOML" in result.output
    missing = invoke("start", "--config", str(tmp_path / "nope.toml"))
    assert missing.exit_code != 0 and "cannot read config file" in missing.output
    assert captured_start == []


def test_a_wrongly_typed_value_is_refused_naming_the_file_and_key(
    tmp_path: Path, captured_start: list[dict[str, Any]]
) -> None:
    cfg = write(tmp_path, 'port = "eighty"\n')
    result = invoke("start", "--config", str(cfg))
    assert result.exit_code != 0 and f"config file {cfg}: key 'port'" in result.output
    assert "AITBC_PORT" not in result.output
    assert captured_start == []


def test_the_file_sets_flags_of_other_commands(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'data-dir = "{tmp_path / "d"}"\n')
    init = invoke("init", "--config", str(cfg))
    assert init.exit_code == 0, init.output
    assert (tmp_path / "d" / "genesis.json").exists()
