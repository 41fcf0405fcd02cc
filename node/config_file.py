"""`--config aitbc.toml`: a TOML file that can set every flag of every command.

Keys are the flags' long names (`data-dir` or `data_dir`, `port`, `log-format`, ...), at the
top level or in a table per command (`[start]`, `[keys.create]`) for values that apply to
one command only. The file feeds click's default_map, so the order of precedence is click's
own: a flag on the command line, then its environment variable, then the file, then the
default. Unknown keys are an error that names them. Relative paths are taken from the
file's directory.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

SKIPPED = {"config", "help", "version"}


def key_of(param: click.Parameter) -> str | None:
    """The file key for a flag: its long name with dashes as underscores (None: not a flag)."""
    if not isinstance(param, click.Option):
        return None
    longs = [o for o in param.opts if o.startswith("--")]
    if not longs:
        return None
    name = longs[0][2:].replace("-", "_")
    return None if name in SKIPPED else name


def _normalise(table: dict[str, Any]) -> dict[str, Any]:
    return {k.replace("-", "_"): (_normalise(v) if isinstance(v, dict) else v) for k, v in table.items()}


def load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return _normalise(tomllib.load(f))
    except OSError as exc:
        raise click.ClickException(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.ClickException(f"config file {path} is not valid TOML: {exc}") from None


def _flag_keys(cmd: click.Command) -> set[str]:
    return {k for p in cmd.params if (k := key_of(p)) is not None}


def _all_flag_keys(cmd: click.Command) -> set[str]:
    keys = _flag_keys(cmd)
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            keys |= _all_flag_keys(sub)
    return keys


def _unknown(cmd: click.Command, table: dict[str, Any], all_keys: set[str], where: str) -> list[str]:
    unknown: list[str] = []
    subs = cmd.commands if isinstance(cmd, click.Group) else {}
    for k, v in table.items():
        sub = subs.get(k) or subs.get(k.replace("_", "-"))
        if isinstance(v, dict) and sub is not None:
            unknown += _unknown(sub, v, _all_flag_keys(sub), f"{where}{k}.")
        elif k not in all_keys:
            unknown.append(where + k)
    return unknown


def _resolve(param: click.Parameter, value: Any, base: Path) -> Any:
    if isinstance(param.type, click.Path) and isinstance(value, str) and value and not Path(value).is_absolute():
        return str(base / value)
    return value


def default_map(
    cmd: click.Command, table: dict[str, Any], base: Path, inherited: dict[str, Any] | None = None
) -> dict[str, Any]:
    """click's default_map for cmd: top-level values, then the command's own table over them."""
    values = {**(inherited or {}), **{k: v for k, v in table.items() if not isinstance(v, dict)}}
    out: dict[str, Any] = {}
    for param in cmd.params:
        k = key_of(param)
        if k is not None and k in values and param.name is not None:
            out[param.name] = _resolve(param, values[k], base)
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            own = table.get(name.replace("-", "_"))
            out[name] = default_map(sub, own if isinstance(own, dict) else {}, base, values)
    return out


def apply(ctx: click.Context, path: Path) -> None:
    """Load path, refuse unknown keys, and make it the defaults of ctx's command and below."""
    table = load(path)
    root = ctx.find_root().command
    unknown = _unknown(root, table, _all_flag_keys(root), "")
    if unknown:
        names = ", ".join(f"'{k}'" for k in sorted(unknown))
        raise click.ClickException(f"config file {path}: unknown key(s) {names}")
    # Tables of the commands on the way from the root to this one apply too.
    chain: list[click.Context] = []
    c: click.Context | None = ctx
    while c is not None:
        chain.append(c)
        c = c.parent
    inherited = {k: v for k, v in table.items() if not isinstance(v, dict)}
    scoped = table
    for c in reversed(chain[:-1]):
        own = scoped.get((c.info_name or "").replace("-", "_"))
        scoped = own if isinstance(own, dict) else {}
        inherited.update({k: v for k, v in scoped.items() if not isinstance(v, dict)})
    defaults = default_map(ctx.command, scoped, path.parent.resolve(), inherited)
    _check_values(ctx, defaults, path)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _check_values(ctx: click.Context, defaults: dict[str, Any], path: Path) -> None:
    """Convert each value the file gives this command as its flag would, so that a bad one is
    reported as the file's key (click would name the flag and its environment variable)."""
    for param in ctx.command.params:
        if param.name is None or param.name not in defaults or isinstance(defaults[param.name], dict):
            continue
        try:
            param.type_cast_value(ctx, defaults[param.name])
        except click.BadParameter as exc:
            raise click.ClickException(f"config file {path}: key '{key_of(param)}': {exc.message}") from None


def _callback(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        apply(ctx, value)


def config_option() -> click.Option:
    return click.Option(
        ["--config"],
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="AITBC_CONFIG",
        show_envvar=True,
        is_eager=True,
        expose_value=False,
        callback=_callback,
        help="TOML file setting any flag (a flag, then its environment variable, win over it).",
    )


class ConfiguredGroup(click.Group):
    """A group whose every command (and sub-group) also takes --config."""

    group_class = type  # sub-groups are ConfiguredGroups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.insert(0, config_option())

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(p.name == "config" for p in cmd.params):
            cmd.params.insert(0, config_option())
        super().add_command(cmd, name)
