"""The import rules of docs/architecture.md, checked on the source.

"Packages and who may import whom" says what each top-level package may import of ours;
"Inside `live`" stacks live's parts in floors, each importing only the floors below it,
so no two parts import each other. Every import counts, also one inside a function or a
`TYPE_CHECKING` block: it is a dependency all the same, only a later or a hidden one.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What each top-level package may import of ours besides itself (None = anything).
MAY_IMPORT: dict[str, tuple[str, ...] | None] = {
    "storage": (),
    "commerce": ("storage",),
    "rtmp_ingest": ("media",),
    "media": (),
    "signaling": ("media", "storage.web"),
    "live": None,
}
# live's parts, from the ground floor up; parts on one floor do not import each other.
LIVE_FLOORS = (
    ("settings", "logs", "secrets_store", "stock_keeper", "stack_dumps"),
    ("sessions",),
    ("flash", "streaming", "auctions", "vouchers", "giveaways"),
    ("hub", "http", "pages"),
    ("analytics",),
    ("schema", "app"),
    ("demo",),
    ("cli",),
)
FLOOR = {part: floor for floor, parts in enumerate(LIVE_FLOORS, start=1) for part in parts}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    source: str  # the importing module, dotted
    target: str  # the module imported (a name imported from a module is that module)

    def broken(self, rule: str) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: imports {self.target}: {rule}"


def packages() -> list[str]:
    """The top-level packages that the distribution ships (pyproject.toml)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(pattern.rstrip("*") for pattern in include)


def module_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str, root: Path) -> bool:
    where = root.joinpath(*dotted.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def imports(path: Path, root: Path = ROOT) -> Iterator[Import]:
    """Every import statement of the file, wherever it stands, relative ones resolved."""
    source = module_of(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, source, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                named = f"{base}.{alias.name}"
                yield Import(path, node.lineno, source, named if is_module(named, root) else base)


def project_imports() -> list[Import]:
    return [
        found
        for package in packages()
        for path in sorted((ROOT / package).rglob("*.py"))
        for found in imports(path)
    ]


def package_rule(found: Import, ours: set[str]) -> str | None:
    """Why the import breaks the packages table, or None."""
    source, target = found.source.split(".")[0], found.target.split(".")[0]
    allowed = MAY_IMPORT[source]
    if target not in ours or target == source or allowed is None:
        return None
    if any(found.target == name or found.target.startswith(f"{name}.") for name in allowed):
        return None
    return f"{source} may import {', '.join(allowed) or 'nothing of ours'}"


def live_part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "live" and len(parts) > 1 else None


def floor_rule(found: Import) -> str | None:
    """Why the import breaks live's floors, or None."""
    source, target = live_part(found.source), live_part(found.target)
    if source is None or target is None or source == target:
        return None
    if unplaced := [f"live.{part}" for part in (source, target) if part not in FLOOR]:
        return f"no floor for {' and '.join(unplaced)}: add one to LIVE_FLOORS and the docs"
    if FLOOR[target] < FLOOR[source]:
        return None
    return (
        f"live.{source} (floor {FLOOR[source]}) may import only live's lower floors, "
        f"and live.{target} is on floor {FLOOR[target]}"
    )


def test_every_package_has_a_rule() -> None:
    assert set(MAY_IMPORT) == set(packages())


def test_every_part_of_live_has_a_floor() -> None:
    parts = {
        path.stem if path.suffix == ".py" else path.name
        for path in (ROOT / "live").iterdir()
        if path.suffix == ".py" or (path / "__init__.py").is_file()
    }
    assert parts - {"__init__"} == set(FLOOR)


def test_packages_import_only_what_the_table_allows() -> None:
    ours = set(packages())
    broken = [
        found.broken(rule)
        for found in project_imports()
        if (rule := package_rule(found, ours)) is not None
    ]
    assert not broken, "\n".join(["imports against the packages table:", *broken])


def test_live_parts_import_only_lower_floors() -> None:
    broken = [
        found.broken(rule) for found in project_imports() if (rule := floor_rule(found)) is not None
    ]
    assert not broken, "\n".join(["imports against live's floors:", *broken])


def test_imports_are_found_wherever_they_stand(tmp_path: Path) -> None:
    package = tmp_path / "pkg" / "sub"
    package.mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "near.py").write_text("")
    module = package / "mod.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from live.hub.context import HubContext\n"
        "def later():\n"
        "    import media.hub\n"
        "from . import near\n"
        "from .. import sub\n"
        "from .near import thing\n"
    )
    found = [(each.line, each.source, each.target) for each in imports(module, tmp_path)]
    assert sorted(found) == [
        (1, "pkg.sub.mod", "typing"),
        (3, "pkg.sub.mod", "live.hub.context"),
        (5, "pkg.sub.mod", "media.hub"),
        (6, "pkg.sub.mod", "pkg.sub.near"),
        (7, "pkg.sub.mod", "pkg.sub"),
        (8, "pkg.sub.mod", "pkg.sub.near"),
    ]
