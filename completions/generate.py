"""Write tcpchat's shell completion scripts (bash, zsh, fish) next to this file.

Run after changing the command line: `python completions/generate.py`. A test regenerates them
and fails when the committed files are stale.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHELLS = ("bash", "zsh", "fish")
HERE = Path(__file__).resolve().parent


def completion_script(shell: str) -> str:
    """What Click prints for `_TCPCHAT_COMPLETE={shell}_source tcpchat`."""
    env = {**os.environ, "_TCPCHAT_COMPLETE": f"{shell}_source"}
    result = subprocess.run(
        [sys.executable, "-c", "from tcpchat.cli import main; main(prog_name='tcpchat')"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def main() -> None:
    for shell in SHELLS:
        (HERE / f"tcpchat.{shell}").write_text(completion_script(shell), encoding="utf-8")


if __name__ == "__main__":
    main()
