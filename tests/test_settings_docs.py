"""The README's settings table is the one `streamcart config --markdown` makes from
`Settings`: names, defaults and descriptions, so a changed default or description
cannot leave the README behind."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from live.cli import main
from live.settings import EMPTY, PREFIX, Settings, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| variable | default | meaning |"


def readme_table() -> list[str]:
    lines = README.read_text().splitlines()
    start = lines.index(HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


def test_readme_table_is_the_generated_one():
    assert readme_table() == markdown_table().splitlines(), (
        "README.md's settings table differs from the code: paste the output of "
        "`streamcart config --markdown` over it"
    )


def test_the_command_prints_the_table(capsys):
    assert main(["config", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown_table()


def test_every_setting_has_one_row_with_its_description():
    rows = {row.split(" | ")[0].strip("| `"): row for row in markdown_table().splitlines()[2:]}
    fields = dataclasses.fields(Settings)
    assert len(rows) == len(fields)
    for f in fields:
        doc = f.metadata["doc"]
        assert doc and "|" not in doc and "\n" not in doc, f.name  # one table cell
        assert rows[PREFIX + f.name.upper()].endswith(f" | {doc} |")


@pytest.mark.parametrize(
    ("name", "shown"),
    [(name, default) for name, default, _ in Settings.documented() if default != EMPTY],
)
def test_each_shown_default_set_as_the_variable_changes_nothing(name, shown):
    """The table's default, written into the environment, is the code's default."""
    assert Settings.from_env({name: shown}) == Settings()


def test_an_empty_default_is_shown_as_empty():
    shown = {name: default for name, default, _ in Settings.documented()}
    for f in dataclasses.fields(Settings):
        assert (shown[PREFIX + f.name.upper()] == EMPTY) == (f.default == "")
