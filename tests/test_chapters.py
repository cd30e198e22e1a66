"""Every chapter follows the book's conventions: stripped outputs, a parameters cell, three profiles."""

from __future__ import annotations

import json

import pytest
import yaml

from infocam import runs

CHAPTERS = runs.chapters()


def test_there_are_chapters():
    assert "01_theory" in CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_committed_without_outputs(chapter):
    nb = json.loads((runs.BOOK / f"{chapter}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{chapter}: strip outputs before committing"
            assert cell.get("execution_count") is None, f"{chapter}: strip execution counts"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_profiles_match_parameters_cell(chapter):
    defaults = runs.parameters_cell(runs.BOOK / f"{chapter}.ipynb")
    profiles = yaml.safe_load((runs.BOOK / "params" / f"{chapter}.yml").read_text())
    assert set(profiles) - {runs.CONSTRAINTS} == set(runs.PROFILES)
    assert profiles["default"] == defaults, "default profile must equal the parameters cell"
    for profile in runs.PROFILES:
        runs.load_profile(chapter, profile)  # validates names and types


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_is_in_the_toc(chapter):
    toc = (runs.REPO / "_toc.yml").read_text()
    assert f"book/{chapter}" in toc


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_records_its_data_source(chapter):
    source = (runs.BOOK / f"{chapter}.ipynb").read_text()
    assert "runs.record(" in source and "data_source" in source


def test_citations_resolve():
    bib = (runs.BOOK / "references.bib").read_text()
    import re

    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    for path in list(runs.BOOK.glob("*.ipynb")) + list(runs.BOOK.glob("*.md")):
        for key in re.findall(r"\{cite[pt]?\}`([^`]+)`", path.read_text()):
            for k in key.split(","):
                assert k.strip() in keys, f"{path.name} cites unknown key {k!r}"
