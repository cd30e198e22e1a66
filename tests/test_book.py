"""Course material: exercises in every chapter, the student edition, the printable book, the summary page.

The build tests run Jupyter Book on a two-page copy of the book's configuration (seconds); the full
editions are built by ``make book-student`` / ``make book-print`` in CI, which check themselves.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infocam import editions, runs
from tests.conftest import VENDORED_MATHJAX, book_skeleton

sys.path.insert(0, str(runs.BOOK / "_ext"))
import course  # noqa: E402

JB = Path(sys.executable).with_name("jupyter-book")


def notebook(chapter: str) -> dict:
    return json.loads((runs.BOOK / f"{chapter}.ipynb").read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"])


# -- exercises and learning goals in the chapters -------------------------------------------------------
# The chapters are the one source of their exercises: these tests read them from the notebooks.

_EXERCISE = re.compile(r"```\{exercise\}[^\n]*\n:label: (\S+)")
_SOLUTION_START = re.compile(r"\{solution-start\}\s+(\S+)")


def exercises(chapter: str) -> dict:
    """``{label: {"text", "solution", "code"}}`` of a chapter's exercises, in order; also checks that
    nothing but exercises and solutions follows the chapter's "## Exercises" heading."""
    cells = notebook(chapter)["cells"]
    heading = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and source(c).startswith("## Exercises")]
    assert len(heading) == 1, f"{chapter}: one '## Exercises' section at the end"
    found, current = {}, None
    for cell in cells[heading[0] + 1 :]:
        text = source(cell)
        if cell["cell_type"] == "code":
            assert current is not None, f"{chapter}: a code cell after the exercises that is not a solution: {text[:60]!r}"
            found[current]["code"] += text + "\n"
        elif (m := _EXERCISE.search(text)) is not None:
            found[m.group(1)] = {"text": text, "solution": "", "code": ""}
        elif (m := _SOLUTION_START.search(text)) is not None:
            assert m.group(1) in found, f"{chapter}: solution of an unknown exercise {m.group(1)!r}"
            current = m.group(1)
            found[current]["solution"] = text
        elif "{solution-end}" in text:
            current = None
        else:
            pytest.fail(f"{chapter}: a cell after the exercises that is neither an exercise nor a solution: {text[:60]!r}")
    assert current is None, f"{chapter}: a solution-start without its solution-end"
    return found


@pytest.mark.parametrize("chapter", runs.chapters())
def test_learning_goals_and_prerequisites_open_every_chapter(chapter):
    goals = source(notebook(chapter)["cells"][1])
    assert "{admonition} Learning goals" in goals and "**Prerequisites.**" in goals
    assert 3 <= sum(line.startswith("- ") for line in goals.splitlines()) <= 4
    assert chapter == "01_theory" or "{doc}" in goals, "name the chapters to read first"


@pytest.mark.parametrize("chapter", runs.chapters())
def test_exercises_are_graded_and_solved_by_asserting_code(chapter):
    found = exercises(chapter)
    assert 3 <= len(found) <= 5
    assert any("*Predict*" in e["text"] and "observe" in e["text"].lower() for e in found.values()), \
        "one exercise must ask to predict, then observe"
    for label, e in found.items():
        assert label.startswith("ex-") and e["solution"], f"{label}: every exercise has a solution"
        assert "\nassert " in "\n" + e["code"], f"{label}: a solution asserts its answer"
    assert sum("from infocam" in e["code"] for e in found.values()) >= len(found) - 1, "solutions call infocam"


def test_exercise_labels_are_unique_across_the_book():
    labels = [label for chapter in runs.chapters() for label in exercises(chapter)]
    assert len(labels) == len(set(labels))


def _bound_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef):
            names |= {node.name} | {a.arg for a in node.args.args}
        elif isinstance(node, ast.Lambda):
            names |= {a.arg for a in node.args.args}
    return names


@pytest.mark.parametrize("chapter", runs.chapters())
def test_solutions_use_only_parameters_and_their_own_names(chapter):
    """Chapters change under the exercises: a solution may read the parameters, its own names and
    earlier solutions' names, never a chapter variable."""
    known = set(runs.parameters_cell(runs.BOOK / f"{chapter}.ipynb")) | set(dir(builtins))
    for label, e in exercises(chapter).items():
        tree = ast.parse(e["code"])
        known |= _bound_names(tree)
        loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert loads <= known, f"{label} reads chapter variables {sorted(loads - known)}"


# -- building the editions ----------------------------------------------------------------------------------

EXERCISE_NB = {
    "cells": [
        {"cell_type": "markdown", "id": "t", "metadata": {}, "source": ["# Tiny chapter\n"]},
        {"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
         "source": ["n = 3\n"]},
        {"cell_type": "code", "id": "h", "metadata": {"tags": ["hide-input"]}, "execution_count": None, "outputs": [],
         "source": ["print('a hidden-input cell, as the chapters have')\n"]},
        {"cell_type": "markdown", "id": "e", "metadata": {},
         "source": "```{exercise} Square\n:label: ex-tiny\n\nCompute $n^2$; see {numref}`ex-tiny`.\n```"},
        {"cell_type": "markdown", "id": "s", "metadata": {},
         "source": "````{solution-start} ex-tiny\n:class: dropdown\n````\n\nSOLUTION-TEXT-MARKER"},
        {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["square = n ** 2  # SOLUTION-CODE-MARKER\n", "assert square == 9\n", "print('ANSWER', square)\n"]},
        {"cell_type": "markdown", "id": "z", "metadata": {}, "source": "````{solution-end}\n````"},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                 "language_info": {"name": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    """The book's _config.yml and extensions on two pages: a page with math and a chapter with an exercise."""
    root = book_skeleton(tmp_path_factory.mktemp("tinybook"), ["tiny"])
    (root / "book" / "intro.md").write_text("# Intro\n\nInline $x^2$ and display\n\n$$\\int_0^1 x\\,dx$$\n")
    (root / "book" / "tiny.ipynb").write_text(json.dumps(EXERCISE_NB))
    return root


def build(root: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(JB), "build", str(root), "-W", "--keep-going", *args], capture_output=True, text=True,
                          cwd=root, timeout=600, env={**os.environ, "INFOCAM_PROGRESS": "0"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_student_edition_drops_solution_text_and_code(tiny_book):
    build(tiny_book)
    full = (tiny_book / "_build" / "html" / "book" / "tiny.html").read_text()
    assert "SOLUTION-TEXT-MARKER" in full and "SOLUTION-CODE-MARKER" in full and "ANSWER 9" in full
    assert editions.solutions_in(tiny_book / "_build" / "html") == ["book/tiny.html"]

    out = tiny_book / "_build" / "student"
    editions.student_config(tiny_book / "_config.yml", out / "_config.yml", tiny_book / "_build" / ".jupyter_cache",
                            tiny_book / "book" / "_ext")
    done = build(tiny_book, "--config", str(out / "_config.yml"), "--path-output", str(out))
    assert "Executing notebook" not in done.stdout, "the student edition must reuse the book's execution cache"
    html_dir = out / "_build" / "html"
    student = (html_dir / "book" / "tiny.html").read_text()
    assert "Exercise 1" in student and "Compute" in student
    for marker in ("SOLUTION-TEXT-MARKER", "SOLUTION-CODE-MARKER", "ANSWER 9", "Solution to"):
        assert marker not in student
    assert editions.check_student(html_dir) == 1


@pytest.mark.slow
def test_printable_book_is_one_page_and_a_pdf_where_chromium_exists(tiny_book, tmp_path):
    build(tiny_book, "--builder", "singlehtml")
    single = tiny_book / "_build" / "singlehtml"
    page = editions.page_of(single)
    text = page.read_text()
    assert "Tiny chapter" in text and "Intro" in text and "SOLUTION-CODE-MARKER" in text
    assert (page.parent / "_static").exists()
    if editions.find_chromium() is None:
        pytest.skip("no chromium on PATH: the single page is the printable book")
    if not VENDORED_MATHJAX.exists():  # MathJax from a CDN cannot load offline: refused, not printed raw
        with pytest.raises(editions.PrintError, match="MathJax"):
            editions.print_book(single, tmp_path / "book.pdf")
        return
    report = editions.print_book(single, tmp_path / "book.pdf")
    assert Path(report["pdf"]).read_bytes()[:4] == b"%PDF"
    assert report["equations_typeset"] >= 2
    assert report["raw_tex_in_pdf"] in (0, None)  # None: no pdftotext to read the PDF back


def test_print_refuses_a_folder_without_a_single_page(tmp_path):
    with pytest.raises(editions.PrintError, match="singlehtml"):
        editions.page_of(tmp_path)


def test_missing_figures_are_found(tmp_path):
    (tmp_path / "book").mkdir()
    page = tmp_path / "book" / "intro.html"
    page.write_text('<img src="_images/a.png"><img src="data:image/png;base64,xx">')
    assert editions.missing_assets(page) == ["_images/a.png"]


def test_student_config_keeps_the_book_config(tmp_path):
    out = editions.student_config(runs.REPO / "_config.yml", tmp_path / "c.yml", tmp_path / "cache", runs.BOOK / "_ext")
    cfg, book = yaml.safe_load(out.read_text()), yaml.safe_load((runs.REPO / "_config.yml").read_text())
    assert cfg["sphinx"]["config"]["student_edition"] is True
    assert Path(cfg["sphinx"]["local_extensions"]["course"]).is_absolute()
    assert cfg["execute"]["cache"] == str((tmp_path / "cache").resolve())
    assert cfg["title"] == book["title"] and cfg["parse"] == book["parse"]
    assert "sphinx_exercise" in cfg["sphinx"]["extra_extensions"]


# -- the summary page --------------------------------------------------------------------------------------


def test_summary_page_is_in_the_toc_before_the_references():
    files = re.findall(r"file:\s*(\S+)", (runs.REPO / "_toc.yml").read_text())
    assert files.index("book/summary") == files.index("book/bibliography") - 1
    assert all(files.index(f"book/{c}") < files.index("book/summary") for c in runs.chapters())


def test_summary_page_is_computed_on_every_build():
    nb = json.loads((runs.BOOK / "summary.ipynb").read_text())
    assert nb["metadata"]["mystnb"]["execution_mode"] == "force"
    assert "book/summary" in course.ALWAYS_REREAD
    code = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "code")
    assert "summary.reproduction_table" in code and "summary.load_metrics" in code
    prose = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    for number in re.findall(r"\d+\.\d+", prose):
        assert number in ("89.73", "87.69", "55.83", "43.34"), f"summary prose types a number: {number}"
