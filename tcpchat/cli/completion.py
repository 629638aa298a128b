"""`tcpchat completion`: the Tab completion script for bash, zsh or fish, from Click itself."""

from __future__ import annotations

import click

from tcpchat.cli.options import CONTEXT_SETTINGS, EXIT_CODES

SHELLS = ("bash", "zsh", "fish")
# The variable Click's completion scripts set when they ask `tcpchat` for candidates.
COMPLETE_VAR = "_TCPCHAT_COMPLETE"


@click.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=EXIT_CODES,
    short_help="Print the Tab completion script for your shell.",
)
@click.argument("shell", type=click.Choice(SHELLS), required=False, metavar="[SHELL]")
def completion(shell: str | None) -> None:
    """Print the Tab completion script for SHELL (default: your login shell).

    It completes commands, options, their choices and files, the hosts you joined and the names
    you used.  To turn it on, run the line for your shell once, then open a new shell:

    \b
    bash  tcpchat completion bash > ~/.tcpchat-complete.bash && echo '. ~/.tcpchat-complete.bash' >> ~/.bashrc
    zsh   tcpchat completion zsh > ~/.tcpchat-complete.zsh && echo 'autoload -Uz compinit && compinit && . ~/.tcpchat-complete.zsh' >> ~/.zshrc
    fish  mkdir -p ~/.config/fish/completions && tcpchat completion fish > ~/.config/fish/completions/tcpchat.fish
    """
    from click.shell_completion import get_completion_class

    shell = shell or _login_shell()
    completer = get_completion_class(shell)
    assert completer is not None  # every name in SHELLS is one of Click's
    # Exactly what `_TCPCHAT_COMPLETE={shell}_source tcpchat` prints, so completions/ can be compared.
    root = click.get_current_context().find_root().command
    click.echo(completer(root, {}, "tcpchat", COMPLETE_VAR).source(), nl=False)


def _login_shell() -> str:
    """The shell named by $SHELL, when it is one we have a script for."""
    import os

    shell = os.path.basename(os.environ.get("SHELL", ""))
    if shell not in SHELLS:
        raise click.UsageError(
            "cannot tell your shell from $SHELL; give one of: " + ", ".join(SHELLS) + "."
        )
    return shell
