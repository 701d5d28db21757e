"""Configuration layers: defaults, [tool.lockwatch], LOCKWATCH_* variables, explicit arguments."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from lockwatch import _config
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


# -- absurd values (a planted config once set interval=1e-6 and hang_timeout=1e-9) ---------------


@pytest.mark.parametrize("value", [0.001, 1e-6, "0.009"])
def test_an_interval_below_ten_milliseconds_is_refused(tmp_path: Path, value: object) -> None:
    pyproject = write_pyproject(tmp_path, f"[tool.lockwatch]\ninterval = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=r"interval must be at least 0\.01 s \(from \[tool\.lockwatch\] in .*pyproject\.toml\)"):
        resolve(environ={}, pyproject=pyproject)
    assert resolve({"interval": 0.01}, environ={}, pyproject=False).interval == 0.01


def test_a_hang_timeout_below_the_interval_is_refused(tmp_path: Path) -> None:
    pyproject = write_pyproject(tmp_path, "[tool.lockwatch]\ninterval = 0.5\n")
    with pytest.raises(ConfigError) as exc:
        resolve(environ={"LOCKWATCH_HANG_TIMEOUT": "1e-9"}, pyproject=pyproject)
    message = str(exc.value)
    assert message.startswith("hang_timeout must not be below interval (from environment variable LOCKWATCH_HANG_TIMEOUT)")
    assert f"(interval from [tool.lockwatch] in {pyproject})" in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"interval from the defaults"):
        resolve({"hang_timeout": 0.1}, environ={}, pyproject=False)
    # Judged once every layer is in: a later layer may make an earlier one fine.
    config = resolve({"interval": 0.05}, environ={"LOCKWATCH_HANG_TIMEOUT": "0.2"}, pyproject=pyproject)
    assert (config.interval, config.hang_timeout) == (0.05, 0.2)
    assert resolve({"hang_timeout": 0.5}, environ={}, pyproject=False).hang_timeout == 0.5  # equal is fine


# -- which pyproject.toml is the project's (as pytest finds its rootdir) -------------------------


def _project(root: Path, *files: tuple[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files:
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("marker", [("pytest.ini", ""), (".pytest.ini", "[pytest]\n"), ("pytest.toml", "[pytest]\n"),
                                    ("tox.ini", "[tox]\n[pytest]\naddopts = -q\n"), ("setup.cfg", "[tool:pytest]\n"),
                                    ("pyproject.toml", "[tool.pytest.ini_options]\naddopts = '-q'\n")])
def test_the_project_root_stops_the_search_upwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   marker: tuple[str, str]) -> None:
    """Was: the nearest pyproject.toml above, even past the project's own root."""
    write_pyproject(tmp_path, "[tool.lockwatch]\ninterval = 3\n")  # someone's, above the project
    project = _project(tmp_path / "project", marker)
    monkeypatch.chdir(_project(project / "src" / "pkg"))
    found = None if marker[0] != "pyproject.toml" else project / "pyproject.toml"
    assert _config.find_pyproject() == found
    assert resolve(environ={}).interval == 0.5


def test_markers_that_do_not_mention_pytest_do_not_make_a_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outer = write_pyproject(tmp_path, "[tool.lockwatch]\ninterval = 3\n")
    inner = _project(tmp_path / "inner", ("tox.ini", "[tox]\nenvlist = py311\n"), ("setup.cfg", "[metadata]\nname = x\n"))
    monkeypatch.chdir(inner)
    assert _config.find_pyproject() == outer


def test_the_nearest_pyproject_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _project(tmp_path, ("pyproject.toml", "[project]\nname = 'outer'\n"))
    inner = _project(tmp_path / "inner", ("pyproject.toml", "[project]\nname = 'inner'\n"))
    monkeypatch.chdir(_project(inner / "deep"))
    assert _config.find_pyproject() == inner / "pyproject.toml"
    # A [tool.lockwatch] table claims its directory, as [tool.pytest] does for pytest.
    claimed = _project(tmp_path / "a", ("pyproject.toml", "[tool.lockwatch]\norder = 'raise'\n"), ("pytest.ini", ""))
    nested = _project(claimed / "b", ("pyproject.toml", "[tool.lockwatch]\norder = 'off'\n"))
    monkeypatch.chdir(nested)
    assert resolve(environ={}).order == "off"


# -- config others control is never read -----------------------------------------------------------


ATTACK = '[tool.lockwatch]\ndump_dir = "/tmp/attacker"\nhang_timeout = 1e-9\ninterval = 1e-6\n'


def _nobody() -> int:
    if os.geteuid() != 0:
        pytest.skip("handing files to another user needs root")
    import pwd

    return pwd.getpwnam("nobody").pw_uid


def test_a_planted_pyproject_in_a_shared_directory_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: someone else's /tmp/pyproject.toml set the victim's dump_dir, interval and hang_timeout."""
    shared = _project(tmp_path / "tmp", ("pyproject.toml", ATTACK))
    shared.chmod(0o1777)
    os.chown(shared / "pyproject.toml", _nobody(), -1)
    monkeypatch.chdir(_project(shared / "victim-work"))
    with pytest.warns(UserWarning, match=r"lockwatch: ignoring \[tool\.lockwatch\] in .*pyproject\.toml: the directory "
                                         r"is writable by others \(mode 1777\)"):
        config = resolve(environ={})
    assert config == Config()


@pytest.mark.parametrize("how", ["file owned by nobody", "directory owned by nobody", "world-writable file",
                                 "world-writable directory", "group-writable, another group"])
def test_config_others_control_is_ignored(tmp_path: Path, how: str) -> None:
    project = _project(tmp_path / "p", ("pyproject.toml", "[tool.lockwatch]\ninterval = 3\n"))
    pyproject = project / "pyproject.toml"
    if how == "file owned by nobody":
        os.chown(pyproject, _nobody(), -1)
    elif how == "directory owned by nobody":
        os.chown(project, _nobody(), -1)
    elif how == "world-writable file":
        pyproject.chmod(0o666)
    elif how == "world-writable directory":
        project.chmod(0o777)
    else:
        _nobody()
        os.chown(pyproject, -1, 12345)
        pyproject.chmod(0o664)
    with pytest.warns(UserWarning, match="lockwatch: ignoring"):
        assert resolve(environ={}, pyproject=pyproject) == Config()


def test_ones_own_config_is_read(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", ("pyproject.toml", "[tool.lockwatch]\ninterval = 3\n"))
    (project / "pyproject.toml").chmod(0o664)  # group-writable by one's own group: user private groups
    os.chown(project / "pyproject.toml", -1, os.getegid())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve(environ={}, pyproject=project / "pyproject.toml").interval == 3.0
    # A file without a lockwatch table in an unsafe place is simply not read: nothing to say.
    project.chmod(0o777)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve(environ={}, pyproject=project / "pyproject.toml") == Config()
