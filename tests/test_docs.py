"""The README documents every command, option and config key, and CI runs its test command."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from conftest import REPO
from pydantic import BaseModel

from monitor.cli import main
from monitor.config import Config

README = (REPO / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "monitor") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from commands(command, path)
        else:
            yield path, command


SECTIONS = {
    name: field.annotation
    for name, field in Config.model_fields.items()
    if not field.exclude and name != "queries"  # a table of names the user chooses
}


def test_named_queries_are_documented() -> None:
    assert "`[queries]`" in README and "rule:" in README


def section_model(annotation: object) -> type[BaseModel]:
    """A section's model: ``FetchConfig``, or ``SourceConfig`` of ``tuple[SourceConfig, ...]``."""
    inner = getattr(annotation, "__args__", (annotation,))[0]
    assert isinstance(inner, type) and issubclass(inner, BaseModel)
    return inner


def documented_keys() -> set[tuple[str, str]]:
    """(section, key) pairs of the README's configuration table."""
    found, section = set(), ""
    for line in README.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3:
            continue
        if named := re.fullmatch(r"`\[\[?(\w+)\]?\]`", cells[0]):
            section = named.group(1)
        if key := re.fullmatch(r"`(\w+)`", cells[1]):
            found.add((section, key.group(1)))
    return found


ALL_KEYS = [
    (section, key)
    for section, annotation in SECTIONS.items()
    for key in section_model(annotation).model_fields
]


@pytest.mark.parametrize(("path", "command"), list(commands(main)), ids=lambda v: str(v))
def test_every_command_and_option_is_documented(path: str, command: click.Command) -> None:
    assert f"`{path}" in README, f"{path} is not in the README"
    for option in command.params:
        if isinstance(option, click.Option):
            longest = max(option.opts, key=len)
            if longest not in ("--help",):
                assert longest in README, f"{path} {longest} is not in the README"


@pytest.mark.parametrize(("section", "key"), ALL_KEYS, ids=lambda v: str(v))
def test_every_config_key_is_documented_in_its_section(section: str, key: str) -> None:
    assert (section, key) in documented_keys(), f"[{section}] {key} is not in the README table"


def test_the_readme_documents_no_key_that_does_not_exist() -> None:
    assert documented_keys() <= set(ALL_KEYS)


def test_every_example_key_is_a_real_key() -> None:
    keys = {key for _, key in ALL_KEYS}
    example = (REPO / "config.example.toml").read_text(encoding="utf-8")
    for found in re.findall(r"^#? ?([a-z_]+) = ", example, flags=re.M):
        assert found in keys, f"config.example.toml uses unknown key {found}"


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    test_command = next(b.strip() for b in blocks if "pytest" in b and "venv" in b)
    assert test_command in (REPO / ".ci" / "run").read_text(encoding="utf-8")
