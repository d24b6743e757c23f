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


def config_keys(model: type[BaseModel]) -> Iterator[str]:
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        yield name
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from config_keys(inner)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from config_keys(annotation)


@pytest.mark.parametrize(("path", "command"), list(commands(main)), ids=lambda v: str(v))
def test_every_command_and_option_is_documented(path: str, command: click.Command) -> None:
    assert f"`{path}" in README, f"{path} is not in the README"
    for option in command.params:
        if isinstance(option, click.Option):
            longest = max(option.opts, key=len)
            if longest not in ("--help",):
                assert longest in README, f"{path} {longest} is not in the README"


@pytest.mark.parametrize("key", sorted(set(config_keys(Config))))
def test_every_config_key_is_documented(key: str) -> None:
    assert re.search(rf"`(\[\[?)?{key}(\]\]?)?`", README), f"config key {key} is not in the README"


def test_every_example_key_is_a_real_key() -> None:
    keys = set(config_keys(Config))
    example = (REPO / "config.example.toml").read_text(encoding="utf-8")
    for found in re.findall(r"^#? ?([a-z_]+) = ", example, flags=re.M):
        assert found in keys, f"config.example.toml uses unknown key {found}"


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    test_command = next(b.strip() for b in blocks if "pytest" in b and "venv" in b)
    assert test_command in (REPO / ".ci" / "run").read_text(encoding="utf-8")
