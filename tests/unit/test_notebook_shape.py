"""The shape every committed notebook keeps, read from the files (no kernel, no service).

A reviewer reads only the executed notebooks: each says what it teaches and how long it takes,
puts prose before every code cell, has one parameters cell, closes with a recap and what to
try, and carries no path of the machine that executed it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lib.config import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: An absolute path of a machine: a home, a temp or a work folder, or a file URI.
ABSOLUTE = re.compile(r"(?<![\w.])(?:/(?:root|home|Users|tmp|work|private|var/folders)/|file:///)")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _text(output: dict) -> str:
    parts = [output.get("text", ""), *output.get("data", {}).values(), output.get("evalue", "")]
    return "".join("".join(p) if isinstance(p, list) else str(p) for p in parts)


def test_there_are_eight_notebooks() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_says_what_it_teaches_and_closes_with_a_recap(path: Path) -> None:
    cells = _cells(path)
    opening = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown" and "What you will learn" in opening
    assert re.search(r"About \d+ minutes to read", opening), "the opening says how long it takes"
    closing = "".join("".join(c["source"]) for c in cells[-2:] if c["cell_type"] == "markdown")
    assert "## Recap" in closing and "What to try next" in closing
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in cells) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_has_prose_before_it(path: Path) -> None:
    cells = _cells(path)
    bare = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and cells[i - 1]["cell_type"] == "code"]
    assert bare == [], f"code cells with no prose before them: {bare}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_output_carries_a_path_of_the_machine_that_ran_it(path: Path) -> None:
    found = [(i, m.group(0)) for i, c in enumerate(_cells(path)) for o in c.get("outputs", [])
             for m in [ABSOLUTE.search(_text(o))] if m]
    assert found == [], f"absolute paths in outputs (cell, match): {found}"
