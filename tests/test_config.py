"""Configuration layers: defaults, [tool.lockwatch], LOCKWATCH_* variables, explicit arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockwatch._config import Config, ConfigError, resolve


def write_pyproject(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(body)
    return path


def test_defaults() -> None:
    config = resolve(environ={}, pyproject=False)
    assert config == Config()
    assert (config.interval, config.on_deadlock, config.order, config.hang_timeout) == (0.5, "report", "warn", None)


def test_layers_override_in_order(tmp_path: Path) -> None:
    pyproject = write_pyproject(
        tmp_path,
        '[tool.lockwatch]\ninterval = 2\norder = "raise"\nhang-timeout = 30\ndeclared_order = ["db", "cache"]\n'
        '[tool.other]\ninterval = "ignored"\n',
    )
    from_file = resolve(environ={}, pyproject=pyproject)
    assert (from_file.interval, from_file.order, from_file.hang_timeout) == (2.0, "raise", 30.0)
    assert from_file.declared_order == ("db", "cache")
    from_env = resolve(environ={"LOCKWATCH_INTERVAL": "0.25", "LOCKWATCH_ORDER": ""}, pyproject=pyproject)
    assert from_env.interval == 0.25 and from_env.order == "raise"  # an empty variable is "not set"
    explicit = resolve({"interval": 1, "order": None}, environ={"LOCKWATCH_INTERVAL": "0.25"}, pyproject=pyproject)
    assert explicit.interval == 1.0 and explicit.order == "raise"  # None overrides nothing


def test_pyproject_is_found_upwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_pyproject(tmp_path, "[tool.lockwatch]\ninterval = 3\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert resolve(environ={}).interval == 3.0


@pytest.mark.parametrize(
    ("settings", "environ", "message"),
    [
        ({"interval": 0}, {}, r"interval must be a positive number \(from arguments\), not 0"),
        ({"interval": True}, {}, "interval must be a positive number"),
        ({}, {"LOCKWATCH_INTERVAL": "soon"}, r"from environment variable LOCKWATCH_INTERVAL"),
        ({}, {"LOCKWATCH_ON_DEADLOCK": "panic"}, "on_deadlock must be one of report, break, exit"),
        ({"order": "loud"}, {}, "order must be one of off, warn, raise"),
        ({"signal": "maybe"}, {}, "signal must be true or false"),
        ({"dump_dir": ""}, {}, "dump_dir must be a directory path"),
        ({"bogus": 1}, {}, "unknown lockwatch setting 'bogus'"),
    ],
)
def test_bad_values_name_the_setting_and_source(settings: dict, environ: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(settings, environ=environ, pyproject=False)


def test_bad_pyproject_values_name_the_file(tmp_path: Path) -> None:
    pyproject = write_pyproject(tmp_path, '[tool.lockwatch]\nhang_timeout = -4\n')
    with pytest.raises(ConfigError, match=r"hang_timeout .*\[tool.lockwatch\] in .*pyproject.toml"):
        resolve(environ={}, pyproject=pyproject)
    broken = write_pyproject(tmp_path, "[tool.lockwatch\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve(environ={}, pyproject=broken)


def test_callable_on_deadlock_and_hang_timeout_off() -> None:
    def react(report: object) -> None:
        pass

    config = resolve({"on_deadlock": react, "hang_timeout": "off"}, environ={}, pyproject=False)
    assert config.on_deadlock is react and config.hang_timeout is None


def test_without_a_toml_parser_a_lockwatch_table_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python 3.10 without tomli: the table cannot be read, and must not be silently ignored.
    import lockwatch._config as config_module

    monkeypatch.setattr(config_module, "tomllib", None)
    for body in ("[tool.lockwatch]\ninterval = 3\n", '[tool.other]\nx = 1\n[ tool . "lockwatch" ]\n',
                 "tool.lockwatch.interval = 3\n"):
        pyproject = write_pyproject(tmp_path, body)
        with pytest.raises(ConfigError, match=r"\[tool.lockwatch\] in .*pyproject.toml cannot be read: .*tomli"):
            resolve(environ={}, pyproject=pyproject)
    # A pyproject.toml with no lockwatch table is no concern of lockwatch's.
    other = write_pyproject(tmp_path, '[project]\nname = "lockwatch-user"\n[tool.lockwatchful]\nx = 1\n')
    assert resolve(environ={}, pyproject=other) == Config()


def test_unknown_pyproject_key_is_an_error_naming_key_and_file(tmp_path: Path) -> None:
    pyproject = write_pyproject(tmp_path, "[tool.lockwatch]\nintervall = 0.3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'intervall' in \[tool.lockwatch\] in .*pyproject.toml; "
                       r"did you mean 'interval'\?"):
        resolve(environ={}, pyproject=pyproject)
    # The dashed spelling of a known key is that key.
    assert resolve(environ={}, pyproject=write_pyproject(tmp_path, "[tool.lockwatch]\ndump-dir = 'd'\n")).dump_dir == "d"


def test_unknown_environment_variable_is_one_warning_line_with_a_close_match(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lockwatch._config as config_module

    monkeypatch.setattr(config_module, "_warned_environment", set())
    environ = {"LOCKWATCH_INTERVALL": "0.3", "LOCKWATCH_PURE": "1", "LOCKWATCH_ZZZ": "x", "LOCKWATCHER": "y"}
    assert resolve(environ=environ, pyproject=False) == Config()
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "lockwatch: warning: unknown environment variable LOCKWATCH_INTERVALL ignored; did you mean LOCKWATCH_INTERVAL?",
        "lockwatch: warning: unknown environment variable LOCKWATCH_ZZZ ignored",
    ]
    resolve(environ=environ, pyproject=False)
    assert capsys.readouterr().err == ""  # said once per process


@pytest.mark.parametrize("value", ["a,b,a", ["db", "cache", "db"]])
def test_declared_order_naming_a_lock_twice_is_an_error(value: object) -> None:
    with pytest.raises(ConfigError, match=r"declared_order names '(a|db)' twice \(from arguments\)"):
        resolve({"declared_order": value}, environ={}, pyproject=False)
    with pytest.raises(ConfigError, match=r"from environment variable LOCKWATCH_DECLARED_ORDER"):
        resolve(environ={"LOCKWATCH_DECLARED_ORDER": "x, y, x"}, pyproject=False)


def test_cli_declared_order_twice_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from lockwatch import cli

    result = CliRunner().invoke(cli.cli, ["run", "--declared-order", "a,b,a", "app.py"])
    assert result.exit_code == 2
    assert "'--declared-order'" in result.output and "'a' twice" in result.output
