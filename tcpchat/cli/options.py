"""What the commands share: context settings, the epilog, the option factory, the hosts completer.

Imported to show `--help`: it must load nothing but Click (a completer imports what it needs when
it is asked).
"""

from __future__ import annotations

import functools
from typing import Any

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}
EXIT_CODES = (
    "Exit status: 0 done, 1 failed (the reason is on stderr), 2 wrong usage, 130 interrupted."
)
# Every option can also come from the environment; the help says from which variable.
option = functools.partial(click.option, show_envvar=True)


class Finite(click.FloatRange):
    """A float range that also refuses `nan` (which no comparison with a bound would catch)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:  # nan
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


def complete_host(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Hosts joined before, most recent first, then this machine."""
    from tcpchat.client.recent import recent_hosts

    return [h for h in [*recent_hosts(), "127.0.0.1", "localhost"] if h.startswith(incomplete)]
