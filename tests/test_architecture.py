"""The layout's rules, read from the source: which package may import which.

    protocol  imports nothing else from tcpchat (but the leaf modules `defaults` and `words`)
    server    never imports the client, nor prompt_toolkit (but for the operator's line at a
              terminal, `tcpchat.server.terminal`, which nothing imports at module level)
    client    never imports the server
    cli       parses and calls: at module level it imports only Click, the standard library and
              the numbers in `tcpchat.defaults`; everything else is imported inside a command
    optional  the modules that need an optional package (`websockets`: `tcpchat.server.web`, the
              bench's browser members; `redis`: `tcpchat.server.cluster`) are imported at module
              level by nothing else: only where `--web`, `--protocol ws` or `--cluster` is on
    no module is much over 500 lines

Every import counts, also those inside functions and under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tcpchat"
LEAVES = {"tcpchat.defaults", "tcpchat.words"}
MAX_LINES = 520


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The modules `path` imports (`from a import b` gives `a.b` when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if f"{node.module}.{alias.name}" in MODULES
            )
    return found


def of_package(package: str) -> list[str]:
    return [name for name in MODULES if name == package or name.startswith(package + ".")]


def inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("module", of_package("tcpchat.protocol"))
def test_the_protocol_imports_nothing_else_from_tcpchat(module: str) -> None:
    others = {
        name
        for name in imports_of(MODULES[module])
        if inside(name, "tcpchat") and not inside(name, "tcpchat.protocol") and name not in LEAVES
    }
    assert not others, f"{module} imports {sorted(others)}"


OPERATOR_LINE = "tcpchat.server.terminal"  # `serve` at a terminal: the server's prompt_toolkit


@pytest.mark.parametrize("module", of_package("tcpchat.server"))
def test_the_server_never_imports_the_client_nor_prompt_toolkit(module: str) -> None:
    wrong = {
        name
        for name in imports_of(MODULES[module])
        if inside(name, "tcpchat.client")
        or (inside(name, "prompt_toolkit") and module != OPERATOR_LINE)
    }
    assert not wrong, f"{module} imports {sorted(wrong)}"


@pytest.mark.parametrize("module", sorted(set(MODULES) - {OPERATOR_LINE}))
def test_the_operator_line_is_imported_only_where_a_terminal_is_found(module: str) -> None:
    top = imports_of(MODULES[module], top_level_only=True)
    assert OPERATOR_LINE not in top, f"{module} imports {OPERATOR_LINE} at module level"


@pytest.mark.parametrize("module", of_package("tcpchat.client"))
def test_the_client_never_imports_the_server(module: str) -> None:
    wrong = {name for name in imports_of(MODULES[module]) if inside(name, "tcpchat.server")}
    assert not wrong, f"{module} imports {sorted(wrong)}"


@pytest.mark.parametrize("module", of_package("tcpchat.cli"))
def test_the_command_line_imports_the_rest_only_inside_its_commands(module: str) -> None:
    allowed_tcpchat = {"tcpchat", "tcpchat.defaults", *of_package("tcpchat.cli")}
    top = imports_of(MODULES[module], top_level_only=True)
    wrong = {
        name
        for name in top
        if (inside(name, "tcpchat") and name not in allowed_tcpchat)
        or not (inside(name, "tcpchat") or inside(name, "click") or _stdlib(name))
    }
    assert not wrong, f"{module} imports {sorted(wrong)} at module level"


# The modules that need an optional package, and the packages.
OPTIONAL = [
    *of_package("tcpchat.server.web"),
    "tcpchat.bench.websocket",
    *of_package("tcpchat.server.cluster"),
]
OPTIONAL_PACKAGES = ("websockets", "redis")


@pytest.mark.parametrize("module", sorted(set(MODULES) - set(OPTIONAL)))
def test_optional_parts_are_imported_only_where_they_are_switched_on(module: str) -> None:
    top = imports_of(MODULES[module], top_level_only=True)
    wrong = {
        name
        for name in top
        if any(inside(name, package) for package in OPTIONAL_PACKAGES) or name in OPTIONAL
    }
    assert not wrong, f"{module} imports {sorted(wrong)} at module level"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_much_over_500_lines(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines"


def _stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names or name == "__future__"


def test_the_rules_see_every_package() -> None:
    """The tests above would pass vacuously if the packages moved: they must find them."""
    for package in ("tcpchat.protocol", "tcpchat.server", "tcpchat.client", "tcpchat.cli"):
        assert len(of_package(package)) >= 2, package
