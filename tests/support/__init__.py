"""What the tests share: a server in a thread, line clients, subprocesses, storms, a terminal.

`tests/` is on the import path (pytest's `pythonpath` option in pyproject.toml), so a test says
`from support.running import RunningServer`; conftest.py only holds the fixtures.
"""

from __future__ import annotations

import os
from pathlib import Path

# One unit for every wait in the tests; raise it on a slow machine (as websockets' MS).
TIMEOUT = float(os.environ.get("TCPCHAT_TEST_TIMEOUT", "5"))
# The checkout the tests belong to (for the README, completions/, scripts run by path).
REPO = Path(__file__).resolve().parents[2]
