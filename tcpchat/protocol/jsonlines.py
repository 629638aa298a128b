"""JSON mode (PROTOCOL.md, JSON mode): events to compact JSON lines and back, with the wire's
timestamps and field names, and each field of a peer's line checked for its kind.

This is the server's hot path (every `say` is decoded, every message encoded), so the fields
of each event class are worked out once into a plan rather than asked of `dataclasses` per line.
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime, timezone
from json.encoder import encode_basestring as _json_string  # C; non-ASCII kept as it is
from typing import Any, Union

from tcpchat.protocol.events import (
    CLIENT_EVENTS,
    SERVER_EVENTS,
    Ack,
    ErrorCode,
    Event,
    HelpRequest,
    Invalid,
    Joined,
    Left,
    Members,
    Message,
    ProtocolUsageError,
    Say,
    ServerEvent,
    Welcome,
)
from tcpchat.protocol.names import NameList

# Python names that differ from the wire field names.
_WIRE_NAMES = {"sender": "from"}


# The last time formatted and its text: a message and its ack share one time, and a server's
# clock hands out one object per millisecond, so most times are formatted once (one tuple,
# replaced whole, so that threads never see half of it).
_last_formatted: tuple[datetime | None, str] = (None, "")


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with milliseconds: `2026-11-24T09:30:00.123Z`."""
    global _last_formatted
    last = _last_formatted
    if last[0] is ts:
        return last[1]
    utc = ts if ts.tzinfo is timezone.utc else ts.astimezone(timezone.utc)
    # isoformat, not strftime: it is done in C, and it pads years before 1000 to four digits
    # where glibc's %Y writes "999".  Its "+00:00" becomes "Z".
    text = utc.isoformat(timespec="milliseconds")[:-6] + "Z"
    _last_formatted = (ts, text)
    return text


def parse_ts(value: str) -> datetime:
    """Parse an RFC 3339 timestamp; raises ValueError for anything else."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if not 2 <= parsed.year <= 9998:  # so that any time zone can still show it
        raise ValueError(f"timestamp out of range: {value}")
    return parsed


def _to_wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Event):
        return event_to_dict(value)
    if isinstance(value, list):
        return [_to_wire(item) for item in value]
    return value


_PLAIN_VALUES = (str, int, bool, type(None))


_ENCODING_PLANS: dict[type[Event], tuple[tuple[str, str, bool, object], ...]] = {}
_DECODING_PLANS: dict[type[Event], tuple[tuple[str, str, Any, bool], ...]] = {}
# The "default" of a field that is always written: no value is this object.
_ALWAYS = object()


def _encoding_plan(cls: type[Event]) -> tuple[tuple[str, str, bool, object], ...]:
    """Per field of `cls`: its name, its wire name, whether its value needs converting, and the
    default that leaves it out of the JSON (`_ALWAYS` for a field always written).

    Worked out once per class: every message and ack is encoded with it, and asking
    `dataclasses.fields` and testing each value's type every time was most of the cost.
    """
    plan = _ENCODING_PLANS.get(cls)
    if plan is None:
        plan = _ENCODING_PLANS[cls] = _work_out_encoding(cls)
    return plan


def _work_out_encoding(cls: type[Event]) -> tuple[tuple[str, str, bool, object], ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for f in fields(cls):
        hint = hints[f.name]
        kinds = (
            typing.get_args(hint)
            if typing.get_origin(hint) in (Union, types.UnionType)
            else (hint,)
        )
        plain = all(
            kind in _PLAIN_VALUES
            or (typing.get_origin(kind) is list and typing.get_args(kind)[0] in _PLAIN_VALUES)
            for kind in kinds
        )  # a list of names is plain; a list of messages is not
        omitted_at = f.default if f.name in cls.WIRE_OMITTED else _ALWAYS
        plan.append((f.name, _WIRE_NAMES.get(f.name, f.name), not plain, omitted_at))
    return tuple(plan)


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON object of an event, `type` first, without the omitted fields at their default."""
    obj: dict[str, Any] = {"type": event.TYPE}
    for name, wire, convert, omitted_at in _encoding_plan(type(event)):
        value = getattr(event, name)
        if value is omitted_at:  # None or False: singletons
            continue
        obj[wire] = _to_wire(value) if convert else value
    return obj


def encode_json(event: Event) -> bytes:
    """One compact JSON line, non-ASCII kept as UTF-8 (PROTOCOL.md, JSON mode)."""
    fast = _FAST_ENCODERS.get(type(event))
    if fast is not None:
        return fast(event)
    if isinstance(event, HelpRequest):
        raise ProtocolUsageError("HelpRequest has no JSON form")
    return _ENCODER.encode(event_to_dict(event)).encode() + b"\n"


# Every message, ack, join and leave is written by these, straight into a line: the same bytes as the
# general path (a test compares the two on any text), at a fraction of the cost.
def _encode_message(message: Message) -> bytes:
    action = ',"me":true' if message.me else ""
    return (
        f'{{"type":"message","seq":{message.seq:d},"from":{_json_string(message.sender)},'
        f'"text":{_json_string(message.text)},"ts":"{format_ts(message.ts)}"{action}}}\n'
    ).encode()


def _encode_ack(ack: Ack) -> bytes:
    request = "null" if ack.id is None else _json_string(ack.id)
    seq = "null" if ack.seq is None else f"{ack.seq:d}"
    return (
        f'{{"type":"ack","id":{request},"seq":{seq},"ts":"{format_ts(ack.ts)}",'
        f'"delivered":{ack.delivered:d}}}\n'
    ).encode()


def _encode_joined(joined: Joined) -> bytes:
    return (
        f'{{"type":"joined","name":{_json_string(joined.name)},"members":{joined.members:d},'
        f'"ts":"{format_ts(joined.ts)}"}}\n'
    ).encode()


def _encode_left(left: Left) -> bytes:
    return (
        f'{{"type":"left","name":{_json_string(left.name)},"members":{left.members:d},'
        f'"reason":{_json_string(left.reason.value)},"ts":"{format_ts(left.ts)}"}}\n'
    ).encode()


def _encode_with_names(event: Welcome | Members) -> bytes:
    """A `welcome` or `members` whose names came with their JSON (`NameList`): written as it
    is, not encoded again."""
    names = event.names
    obj = event_to_dict(event)
    if not isinstance(names, NameList):
        return _ENCODER.encode(obj).encode() + b"\n"
    obj["names"] = []
    # The first `"names":[]` is the field's: no JSON string holds a bare quote.
    text = _ENCODER.encode(obj).replace('"names":[]', '"names":' + names.json, 1)
    return text.encode() + b"\n"


_FAST_ENCODERS: dict[type[Event], Callable[[Any], bytes]] = {
    Message: _encode_message,
    Ack: _encode_ack,
    Joined: _encode_joined,
    Left: _encode_left,
    Welcome: _encode_with_names,
    Members: _encode_with_names,
}


# One encoder for every line (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class _BadField(Exception):
    pass


def _check(value: Any, hint: Any) -> Any:
    """Check one decoded JSON value against a field's type hint; return it converted."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _check(value, inner)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise _BadField
        return [_check(item, item_hint) for item in value]
    if hint is datetime:
        if not isinstance(value, str):
            raise _BadField
        try:
            return parse_ts(value)
        except ValueError:
            raise _BadField from None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise _BadField from None
    if isinstance(hint, type) and issubclass(hint, Event):
        if not isinstance(value, dict):
            raise _BadField
        return _build(hint, value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadField
        return value
    if not isinstance(value, hint):
        raise _BadField
    return value


def _decoding_plan(cls: type[Event]) -> tuple[tuple[str, str, Any, bool], ...]:
    """Per field of `cls`: its name, its wire name, its type hint, and whether it must be there."""
    plan = _DECODING_PLANS.get(cls)
    if plan is None:
        plan = _DECODING_PLANS[cls] = _work_out_decoding(cls)
    return plan


def _work_out_decoding(cls: type[Event]) -> tuple[tuple[str, str, Any, bool], ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for f in fields(cls):
        wire = _WIRE_NAMES.get(f.name, f.name)
        has_default = f.default is not f.default_factory  # both MISSING when required
        plan.append((f.name, wire, hints[f.name], not has_default or wire in cls.WIRE_REQUIRED))
    return tuple(plan)


def _build(cls: type[Event], obj: dict[str, Any]) -> Event:
    kwargs: dict[str, Any] = {}
    for name, wire, hint, required in _decoding_plan(cls):
        if wire not in obj:
            if required:
                raise _BadField(wire)
            continue
        value = obj[wire]
        if hint is str and type(value) is str:  # the common case, without the general check
            kwargs[name] = value
        else:
            kwargs[name] = _check(value, hint)
    return cls(**kwargs)


def _build_say(obj: dict[str, Any]) -> Event:
    """The common line of all, checked without the general plan (which explains what is wrong
    with one that fails these checks)."""
    text, request_id, me = obj.get("text"), obj.get("id"), obj.get("me", False)
    if type(text) is str and (request_id is None or type(request_id) is str) and type(me) is bool:
        return Say(text, request_id, me)
    return _build(Say, obj)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _load_object(text: str) -> dict[str, Any] | Invalid:
    try:
        obj = json.loads(text)
        if _SURROGATE_ESCAPE.search(text):
            # A surrogate escape without its pair decodes to a string that is not Unicode text;
            # refuse the line here rather than fail later when it is encoded for someone.
            json.dumps(obj, ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return Invalid(ErrorCode.BAD_JSON, "That line is not valid JSON.")
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return Invalid(
            ErrorCode.BAD_MESSAGE, 'Each line must be a JSON object with a string "type".'
        )
    return obj


def decode_json(text: str, registry: dict[str, type[Event]] = CLIENT_EVENTS) -> Event | Invalid:
    """Decode one JSON line into an event of `registry` (client events by default)."""
    obj = _load_object(text)
    if isinstance(obj, Invalid):
        return obj
    raw_id = obj.get("id")
    request_id = raw_id if isinstance(raw_id, str) else None
    cls = registry.get(obj["type"])
    if cls is None:
        return Invalid(ErrorCode.UNKNOWN_TYPE, f"Unknown message type {obj['type']!r}.", request_id)
    try:
        if cls is Say:
            return _build_say(obj)
        return _build(cls, obj)
    except _BadField as exc:
        missing = f" (field {exc.args[0]!r} is missing)" if exc.args else ""
        return Invalid(
            ErrorCode.BAD_MESSAGE,
            f"A {cls.TYPE!r} message has a field missing or of the wrong kind{missing}.",
            request_id,
        )


def decode_server_json(text: str) -> ServerEvent | Invalid:
    """Decode one line the server sent (for clients)."""
    return decode_json(text, SERVER_EVENTS)  # type: ignore[return-value]
