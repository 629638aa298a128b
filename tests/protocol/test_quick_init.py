"""`quick_init` makes the same objects as a frozen dataclass's own `__init__`, faster."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from tcpchat.protocol import Ack, Message, Say
from tcpchat.protocol.quick import quick_init


@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    number: int
    text: str
    flag: bool = False
    items: list[int] = dataclasses.field(default_factory=list)


Quick = quick_init(
    dataclasses.make_dataclass(
        "Quick",
        [("number", int), ("text", str), ("flag", bool, dataclasses.field(default=False)),
         ("items", list[int], dataclasses.field(default_factory=list))],
        frozen=True,
        slots=True,
    )
)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1, "a"), {}), ((1,), {"text": "b", "flag": True}), ((), {"number": 2, "text": "c",
     "items": [3]}), ((4, "d", True, [5]), {})],
)  # fmt: skip
def test_the_fields_and_defaults_are_the_dataclasses(args: tuple, kwargs: dict) -> None:
    plain, quick = Plain(*args, **kwargs), Quick(*args, **kwargs)
    assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
    assert repr(quick).replace("Quick", "Plain") == repr(plain)


def test_each_default_list_is_its_own_and_the_object_stays_frozen() -> None:
    first, second = Quick(1, "a"), Quick(2, "b")
    assert first.items == [] and first.items is not second.items
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.number = 3  # type: ignore[misc]
    assert dataclasses.replace(first, number=3) == Quick(3, "a")
    assert hash(Quick(1, "a", items=())) == hash(Quick(1, "a", items=()))  # type: ignore[arg-type]


def test_wrong_arguments_are_refused_as_by_any_function() -> None:
    with pytest.raises(TypeError):
        Quick(1)
    with pytest.raises(TypeError):
        Quick(1, "a", colour="red")


def test_the_messages_events_use_it() -> None:
    now = datetime.now(timezone.utc)
    for cls in (Say, Message, Ack):
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
        assert any(name.startswith("_set_") for name in cls.__init__.__code__.co_names)
    message = Message(seq=1, sender="a", text="b", ts=now)
    assert (message.seq, message.me) == (1, False)
    assert Ack("x", 1, now, 2) == Ack(id="x", seq=1, ts=now, delivered=2)


def test_a_class_it_cannot_speed_up_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        number: int

    with pytest.raises(TypeError):
        quick_init(Unslotted)
