"""The `tcpchat` command: a Click group whose commands parse their options, then call one function.

One module per command (`serve`, `join`, `bench`, `completion`, `history`), the shared option helpers in
`options`.  Heavy imports happen inside the commands so `tcpchat --help` and `tcpchat serve` start
fast and `serve` never loads prompt_toolkit.  Every failure a person can cause ends here as one
sentence (a `click.ClickException`), never a traceback.
"""

from __future__ import annotations

import click

from tcpchat import __version__
from tcpchat.cli import bench, completion, history, join, serve
from tcpchat.cli.options import CONTEXT_SETTINGS, EXIT_CODES


@click.group(name="tcpchat", context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@click.version_option(__version__, "-V", "--version", prog_name="tcpchat")
def main() -> None:
    """A small chat server and client for a LAN or the internet.

    Start a server with 'tcpchat serve'; people join it with 'tcpchat join HOST' or with
    'nc HOST 1024'.  'tcpchat completion' sets up Tab completion for your shell.
    """


main.add_command(serve.serve)
main.add_command(join.join)
main.add_command(bench.bench)
main.add_command(completion.completion)
main.add_command(history.history)
