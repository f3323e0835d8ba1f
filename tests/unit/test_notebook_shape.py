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


def test_there_are_ten_notebooks() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"]


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


#: A stream output is a print or a progress bar; more than this many in one cell is a wall nobody reads.
MOST_STREAM_LINES = 20
#: A path of the repository named in a notebook: lib/…, docs/…, bench/…, dags/…, tests/…, notebooks/…, jars/…
REPO_PATH = re.compile(r"(?<![\w./-])((?:lib|docs|bench|dags|tests|notebooks|jars|docker)/[\w./-]*\w)")
#: A module of the package named in a notebook: lib.medallion.bronze, lib.contract.events.validation_reason
MODULE = re.compile(r"(?<![\w.])(lib(?:\.\w+)+)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_cell_prints_a_wall_of_stream_output(path: Path) -> None:
    """Progress bars and prints stay short in the committed file: a few lines per cell, not hundreds of updates."""
    walls = {}
    for i, cell in enumerate(_cells(path)):
        streams = [o for o in cell.get("outputs", []) if o["output_type"] == "stream"]
        lines = sum(len(re.split(r"[\r\n]+", "".join(o["text"]).strip())) for o in streams)
        if len(streams) > MOST_STREAM_LINES or lines > MOST_STREAM_LINES:
            walls[i] = lines
    assert walls == {}, f"cells with more than {MOST_STREAM_LINES} lines of stream output (cell: lines): {walls}"


def _named_module(dotted: str) -> bool:
    """`lib.a.b.name`: some prefix is a module of the package, and what follows it is defined there."""
    parts = dotted.split(".")
    for cut in range(len(parts), 1, -1):
        base = ROOT.joinpath(*parts[:cut])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if source.is_file():
            rest = parts[cut:]
            return not rest or re.search(rf"\b{re.escape(rest[0])}\b", source.read_text()) is not None
    return False


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_file_and_module_a_notebook_names_is_in_the_repository(path: Path) -> None:
    text = "\n".join("".join(c["source"]) for c in _cells(path))
    missing = sorted({p for p in REPO_PATH.findall(text) if not (ROOT / p.rstrip(".")).exists()}
                     | {m for m in MODULE.findall(text) if not _named_module(m)})
    assert missing == [], f"{path.name} names what the repository does not hold: {missing}"


#: A section of a notebook named in the README's claim table: `02 §6` is notebook 02, section 6.
SECTION_REF = re.compile(r"\b(\d\d) §(\d+)\b")


def _claims() -> list[tuple[str, str, str]]:
    """The README's claim table: (number, the claim, where it is shown) per row."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## The design, claim by claim", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    return [(row[0].strip("| "), row[1], row[2]) for row in rows]


def test_the_readme_lists_the_designs_claims_each_with_where_it_is_shown() -> None:
    claims = _claims()
    assert [int(n) for n, _, _ in claims] == list(range(1, len(claims) + 1)) and len(claims) >= 41
    assert all(SECTION_REF.search(where) for _, _, where in claims), "every claim names a notebook section"


@pytest.mark.parametrize("ref", sorted({m for _, _, where in _claims() for m in SECTION_REF.findall(where)}),
                         ids=lambda ref: f"{ref[0]}-{ref[1]}")
def test_each_section_the_claim_table_names_exists_and_was_executed(ref: tuple[str, str]) -> None:
    number, section = ref
    (path,) = [p for p in NOTEBOOKS if p.name.startswith(number)]
    cells = _cells(path)
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
              and re.match(rf"## {section}[ .·]", "".join(c["source"]))]
    assert starts, f"{path.name} has no section {section}"
    following = cells[starts[0] + 1:]
    end = next((i for i, c in enumerate(following) if "".join(c["source"]).startswith("## ")), len(following))
    executed = [c for c in following[:end] if c["cell_type"] == "code" and c.get("outputs")]
    assert executed, f"{path.name} section {section} has no executed cell with output"


def careful_read_minutes(cells: list[dict]) -> float:
    """What a careful first read takes, by a stated rule: prose at 180 words a minute, code at 15 lines a
    minute (read, not skimmed), text output at 2,500 characters a minute, half a minute per figure."""
    words = sum(len("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")
    code = sum(len("".join(c["source"]).splitlines()) for c in cells if c["cell_type"] == "code")
    text, figures = 0, 0
    for cell in cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                figures += 1
            elif output["output_type"] == "stream":
                text += len("".join(output["text"]))
            else:
                text += len("".join(data.get("text/plain", "")))
    return words / 180 + code / 15 + text / 2500 + figures / 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_stated_reading_time_is_what_a_careful_read_takes(path: Path) -> None:
    cells = _cells(path)
    stated = int(re.search(r"About (\d+) minutes to read", "".join(cells[0]["source"])).group(1))
    estimate = careful_read_minutes(cells)
    assert stated >= round(estimate * 0.9), f"{path.name} says {stated} minutes; a careful read takes {estimate:.0f}"
