"""Static checks of the Helm chart in helm/roomevents (no helm binary needed).

* every `.Values.a.b.c` path a template uses exists in values.yaml, so a typo
  in a template (or a key dropped from values.yaml) is caught before render;
* every key in values.yaml is used by some template (no dead settings);
* every key in values.yaml carries a comment (the file is the chart's docs).

The full render + schema validation lives in .ci/deploy-checks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read values.yaml")

CHART = Path(__file__).resolve().parent.parent / "helm" / "roomevents"
VALUES_FILE = CHART / "values.yaml"
TEMPLATES = CHART / "templates"

# `.Values.x.y` or `$.Values.x.y`; segments are plain identifiers (the chart
# never indexes values with `index`, so every access is visible to this scan).
VALUES_REF = re.compile(r"(?<![\w])\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")

_MISSING = object()


def _template_files() -> list[Path]:
    files = sorted(p for p in TEMPLATES.rglob("*") if p.is_file())
    assert files, f"no templates under {TEMPLATES}"
    return files


def _values() -> dict:
    data = yaml.safe_load(VALUES_FILE.read_text())
    assert isinstance(data, dict), "values.yaml must be a mapping"
    return data


def _refs() -> dict[tuple[str, ...], list[str]]:
    """Map each referenced values path to the template locations using it."""
    refs: dict[tuple[str, ...], list[str]] = {}
    for path in _template_files():
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            for match in VALUES_REF.finditer(line):
                key = tuple(match.group(1).lstrip(".").split("."))
                refs.setdefault(key, []).append(f"{path.relative_to(CHART)}:{lineno}")
    return refs


def _lookup(data: object, path: tuple[str, ...]) -> object:
    node = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaf_paths(data: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths to every non-mapping value and every empty mapping (lists are leaves)."""
    paths: list[tuple[str, ...]] = []
    for key, value in data.items():
        here = prefix + (str(key),)
        if isinstance(value, dict) and value:
            paths.extend(_leaf_paths(value, here))
        else:
            paths.append(here)
    return paths


def test_scan_finds_references() -> None:
    refs = _refs()
    # Sanity check of the regex itself, so a broken pattern can't pass vacuously.
    assert ("roles", "ingress", "port") in refs
    assert ("twilio", "existingSecret") in refs
    assert len(refs) > 40


def test_every_template_values_path_exists_in_values_yaml() -> None:
    values = _values()
    missing = {".".join(path): where for path, where in sorted(_refs().items()) if _lookup(values, path) is _MISSING}
    assert not missing, "template(s) use values missing from values.yaml:\n" + "\n".join(
        f"  .Values.{path}  ({', '.join(where)})" for path, where in missing.items()
    )


def test_every_values_key_is_used_by_a_template() -> None:
    refs = set(_refs())
    unused = [
        ".".join(leaf)
        for leaf in _leaf_paths(_values())
        # A template using a parent (e.g. `toYaml .Values.roles.ingress.resources`)
        # uses all of its children.
        if not any(leaf[: len(ref)] == ref for ref in refs)
    ]
    assert not unused, "values.yaml keys no template uses:\n" + "\n".join(f"  {u}" for u in unused)


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*):(?:\s|$)")
_LIST_ITEM = re.compile(r"^(?P<indent> *)- ")


def test_every_values_key_is_documented() -> None:
    """Each mapping key outside list items has a comment on the line above or inline."""
    undocumented: list[str] = []
    lines = VALUES_FILE.read_text().splitlines()
    list_indent: int | None = None  # indent of the list we are inside, if any
    for index, line in enumerate(lines):
        item = _LIST_ITEM.match(line)
        if item:
            indent = len(item.group("indent"))
            list_indent = indent if list_indent is None else min(list_indent, indent)
            continue
        match = _KEY_LINE.match(line)
        if not match:
            continue  # comments, blank lines
        indent = len(match.group("indent"))
        if list_indent is not None:
            if indent > list_indent:
                continue  # a key of a list item: documented by the list's comment
            list_indent = None
        inline = "#" in line.split(":", 1)[1]
        above = lines[index - 1].strip() if index else ""
        if not (inline or above.startswith("#")):
            undocumented.append(f"values.yaml:{index + 1}: {match.group('key')}")
    assert not undocumented, "undocumented values keys:\n" + "\n".join(undocumented)


def test_ci_values_files_only_set_known_keys() -> None:
    """The ci/*-values.yaml overrides must not set keys the chart doesn't know."""
    values = _values()
    problems: list[str] = []
    for ci_file in sorted((CHART / "ci").glob("*-values.yaml")):
        overrides = yaml.safe_load(ci_file.read_text()) or {}
        for leaf in _leaf_paths(overrides):
            # Walk down to the deepest known prefix: free-form maps such as
            # podAnnotations ({} in values.yaml) accept any keys below them.
            node: object = values
            for depth, part in enumerate(leaf):
                if isinstance(node, dict) and not node and depth > 0:
                    break  # an empty mapping in values.yaml is free-form
                if not isinstance(node, dict) or part not in node:
                    problems.append(f"{ci_file.name}: {'.'.join(leaf)}")
                    break
                node = node[part]
    assert not problems, "ci values set unknown keys:\n" + "\n".join(problems)
