"""`tcpchat join`'s settings: what each one is, the settings file that changes their defaults,
and `/set`, which changes one for the session.

`Settings` is the one list of them: a setting is one line there, with its default, the values
it takes (a Click type, which reads and checks a value wherever it comes from) and what it is
for.  The file is `settings.ini` in tcpchat's folder, read by the standard library's
configparser, under `[join]`.  A setting that is also an option of `join` (same name) is that
option's default through Click's `default_map`, so the option and its environment variable
still win; the others only come from the file and `/set`.

No prompt_toolkit here: `tcpchat join --help` reads the file to show its defaults.
"""

from __future__ import annotations

import configparser
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from tcpchat.defaults import DEFAULT_PORT
from tcpchat.files import config_dir
from tcpchat.words import CLOCK

SECTION = "join"
FILE_NAME = "settings.ini"
T = TypeVar("T")

JOINS = ("on", "off", "smart")
TIME_FORMATS = {"HH:MM": CLOCK, "HH:MM:SS": "%H:%M:%S"}  # as written: as strftime spells it
COLOURS = ("auto", "none", "16", "256", "truecolor")
NOTIFY = ("auto", "osc9", "osc777", "off")


class SettingsError(Exception):
    """The settings file or a `/set` cannot be taken: the message is one sentence for a person."""


def setting(default: T, kind: click.ParamType[Any], about: str, *, live: bool = True) -> T:
    """One setting: its `default`, the `kind` of value it takes, what it is `about`; `live` ones
    may be changed by `/set` while chatting (the others are read once, to connect)."""
    return dataclasses.field(default=default, metadata={"kind": kind, "about": about, "live": live})


@dataclass
class Settings:
    """Every setting of the chat screen, with its default; one line each."""

    name: str | None = setting(None, click.STRING, "your name in the chat", live=False)
    host: str | None = setting(None, click.STRING, "the server to join", live=False)
    port: int = setting(DEFAULT_PORT, click.IntRange(1, 65535), "its TCP port", live=False)
    time_format: str = setting("HH:MM", click.Choice(list(TIME_FORMATS)), "HH:MM or HH:MM:SS")
    colours: str = setting("auto", click.Choice(COLOURS), "auto, none, 16, 256 or truecolor")
    joins: str = setting("on", click.Choice(JOINS), "joins and leaves: on, off or smart")
    quiet: bool = setting(False, click.BOOL, "a big room: no joins, only mentions are counted")
    bell: bool = setting(True, click.BOOL, "the bell on a mention or a private message")
    notify: str = setting("auto", click.Choice(NOTIFY), "desktop notices: auto, osc9, osc777, off")
    title: bool = setting(True, click.BOOL, "unread messages counted in the window's title")
    marker: bool = setting(True, click.BOOL, "a line where new messages start after you were away")
    away_after: float = setting(5.0, click.FloatRange(min=0), "minutes idle that count as away")
    log: str | None = setting(None, click.Path(dir_okay=False), "the session's log", live=False)

    @property
    def strftime(self) -> str:
        """The time format as `strftime` spells it."""
        return TIME_FORMATS[self.time_format]

    def change(self, key: str, value: str) -> str:
        """`/set KEY VALUE` for this session; what it did, in a sentence (SettingsError if not)."""
        field = _field(key)
        if not field.metadata["live"]:
            raise SettingsError(f"{field.name} is only read on joining; give it as an option.")
        setattr(self, field.name, _convert(field, value))
        shown = f"{field.name} = {_written(getattr(self, field.name))}"
        return (
            f"{shown} for this session (to keep it, write `{shown}` under [{SECTION}] in {path()})."
        )

    def lines(self, key: str = "") -> list[str]:
        """`/set`: every setting, or the one named `key`, with its value and what it does."""
        fields = [_field(key)] if key else dataclasses.fields(self)
        return [
            f"{field.name} = {_written(getattr(self, field.name))}  ({field.metadata['about']})"
            for field in fields
        ]

    def overridden(self, values: Mapping[str, Any]) -> Settings:
        """These settings with `values` (a command's parameters) for those that are settings."""
        names = {field.name for field in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: v for k, v in values.items() if k in names})


def path() -> Path:
    return config_dir() / FILE_NAME


def load(file: Path | None = None) -> Settings:
    """The settings, with the defaults the file (`path()` unless `file`) gives; no file, none.

    Raises SettingsError naming the file and what is wrong in it: a mistyped setting is said,
    not silently ignored.
    """
    file = file or path()
    # `%` is a value, not a reference; `; why` after a value is a comment, as in the README.
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        with open(file, encoding="utf-8") as text:
            parser.read_file(text)
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"cannot read the settings file {file}: {error}.") from None
    except configparser.Error as error:
        raise SettingsError(f"cannot read the settings file {file}: {_why(error)}.") from None
    values: dict[str, Any] = {}
    if parser.has_section(SECTION):
        for key, value in parser.items(SECTION):
            try:
                field = _field(key)
                values[field.name] = _convert(field, value)
            except SettingsError as error:
                raise SettingsError(f"in {file}: {error}") from None
    return Settings(**values)


def file_defaults(settings: Settings, parameters: list[str]) -> dict[str, Any]:
    """A command's `default_map`: for each of its `parameters` that is a setting, the value
    the file gave it (the defaults the file does not change stay the command's own)."""
    default = Settings()
    return {
        key: getattr(settings, key)
        for key in parameters
        if hasattr(default, key) and getattr(settings, key) != getattr(default, key)
    }


def check(key: str, value: str) -> Any:
    """`value` read as setting `key` takes it (SettingsError if it does not)."""
    return _convert(_field(key), value)


def _field(key: str) -> dataclasses.Field[Any]:
    wanted = key.strip().lower().replace("-", "_")
    for field in dataclasses.fields(Settings):
        if field.name == wanted:
            return field
    known = ", ".join(field.name for field in dataclasses.fields(Settings))
    raise SettingsError(f"there is no setting {key!r}; the settings are {known}.")


def _convert(field: dataclasses.Field[Any], value: str) -> Any:
    kind: click.ParamType[Any] = field.metadata["kind"]
    try:
        return kind.convert(value.strip(), None, None)
    except click.BadParameter as error:
        raise SettingsError(f"{field.name}: {error.message.rstrip('.')}.") from None


def _written(value: object) -> str:
    """A value as the file and `/set` write it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "(none)" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _why(error: configparser.Error) -> str:
    """configparser's complaint, as the part of a sentence that says where and what."""
    if isinstance(error, configparser.MissingSectionHeaderError):
        return f"line {error.lineno} comes before any [section]; settings go under [{SECTION}]"
    if isinstance(error, configparser.ParsingError):
        line, _ = error.errors[0] if error.errors else (0, "")
        return f"line {line} is not `name = value`"
    return error.message.splitlines()[0].rstrip(".")
