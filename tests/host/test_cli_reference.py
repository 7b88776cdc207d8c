"""The command reference (docs/reference.md) is generated from the parsers: every command and option in it.

docs/hooks/cli_reference.py replaces the page's marker at `mkdocs build`; this checks what it produces
against an independent walk of `edgenn.cli.build_parser()`, and that every argument has help text.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from edgenn.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def load_hook():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def walk(parser: argparse.ArgumentParser, prefix: str = "edgenn"):
    """(command path, parser) for every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from walk(sub, f"{prefix} {name}")


COMMANDS = list(walk(build_parser()))


class FakeFile:
    src_uri = "reference.md"


class FakePage:
    file = FakeFile()


@pytest.fixture(scope="module")
def page() -> str:
    hook = load_hook()
    source = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert source.count(hook.MARKER) == 1
    return hook.on_page_markdown(source, FakePage(), None, None)


def test_there_are_commands_to_document() -> None:
    names = [name for name, _ in COMMANDS]
    assert {"edgenn train", "edgenn deploy", "edgenn predict", "edgenn vboard"} <= set(names)


@pytest.mark.parametrize("name, parser", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_command_and_option_is_in_the_reference(page: str, name: str, parser) -> None:
    section = page.split(f"## `{name}`\n", 1)
    assert len(section) == 2, f"no section for {name}"
    body = section[1].split("\n## ", 1)[0]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        shown = action.option_strings or [action.metavar or action.dest]
        for text in shown:
            assert f"`{text}" in body or f" {text}" in body, f"{name}: {text} is not in the reference"


@pytest.mark.parametrize("name, parser", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_argument_has_help_text(name: str, parser) -> None:
    assert parser.description, f"{name} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, (
            f"{name}: {action.option_strings or action.dest}"
        )


def test_a_page_without_the_marker_fails_the_build() -> None:
    with pytest.raises(ValueError, match="marker"):
        load_hook().on_page_markdown("# Commands\n", FakePage(), None, None)
