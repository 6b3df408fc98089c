"""The README is a front door that stays true: its first two commands, its links and its
commands table (checked against the command line's parser)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from stream_edits.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"the README has no section {title!r}"
    return match.group(1)


def test_the_first_two_commands_are_the_demo_and_ci_and_both_exist() -> None:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block
    commands = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert commands[:2] == ["bash scripts/demo", "bash .ci/run"]
    assert (ROOT / "scripts/demo").is_file()
    assert (ROOT / ".ci/run").is_file()


def test_the_readme_is_a_front_door() -> None:
    assert len(README.splitlines()) <= 200


def test_every_relative_link_resolves_to_a_file() -> None:
    links = re.findall(r"\]\(([^)]+)\)", README)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert relative, "the README links to no page"
    missing = [link for link in relative if not (ROOT / link.split("#")[0]).is_file()]
    assert missing == []


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def listed_commands() -> list[str]:
    table = section("Commands")
    rows = [line for line in table.splitlines() if line.startswith("| `stream-edits")]
    return [span for row in rows for span in re.findall(r"`(stream-edits [^`]+)`", row)]


def resolve(command: str) -> tuple[list[str], argparse.ArgumentParser, list[str]]:
    """The subcommand path of a usage line, its parser, and the words after the path."""
    words = command.replace("\\|", "|").split()[1:]
    parser, path = build_parser(), []
    while words and words[0] in subcommands(parser):
        path.append(words[0])
        parser = subcommands(parser)[words.pop(0)]
    return path, parser, words


def test_the_commands_table_lists_every_command() -> None:
    listed = {tuple(resolve(command)[0]) for command in listed_commands()}
    root = build_parser()
    expected = set()
    for name, command in subcommands(root).items():
        actions = subcommands(command)
        expected |= {(name, action) for action in actions} if actions else {(name,)}
    assert expected - listed == set(), "commands missing from the README's table"


@pytest.mark.parametrize("command", listed_commands())
def test_each_listed_command_and_option_exists(command: str) -> None:
    path, parser, words = resolve(command)
    assert path, f"{command}: not a command of the parser"
    options = {o: a for a in parser._actions for o in a.option_strings}
    positional_choices = [
        set(a.choices) for a in parser._actions if not a.option_strings and a.choices
    ]
    previous = None
    for word in (w.strip("[]") for w in words):
        if word.startswith("--"):
            assert word in options, f"{command}: {' '.join(path)} has no {word}"
            previous = options[word]
        elif "|" in word and previous is not None and previous.choices:
            assert set(word.split("|")) <= set(previous.choices), f"{command}: {word}"
        elif word.islower() and word.isalpha() and positional_choices:
            assert any(word in choices for choices in positional_choices), f"{command}: {word}"
