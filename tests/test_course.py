"""Course material (infocam.course): exercises split into stubs and tests, MyST made plain, otter grading.

The chapters' own exercises are checked without running anything (seconds); the whole pipeline —
otter assign, then otter's grader on the instructor's and the untouched student notebook — runs on
a one-exercise chapter executed in the test. ``make course`` does the same for every chapter.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infocam import bookbuild, course, editions, runs

CHAPTERS = runs.chapters()


def chapter(name: str) -> dict:
    return json.loads((runs.BOOK / f"{name}.ipynb").read_text())


# -- every exercise of the book: a stub and tests -----------------------------------------------------------


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_exercise_has_a_stub_and_at_least_one_test(name):
    earlier: set[str] = set()
    for e in course.exercises(chapter(name), name):
        body, tests = e.split()
        assert tests and e.points == len(tests), f"{e.label}: no test"
        assert not any(isinstance(s, ast.Assert) for s in ast.parse(body).body), f"{e.label}: an assert left in the solution"
        solution_asserts = [ast.unparse(s) for s in ast.parse(e.code).body if isinstance(s, ast.Assert)]
        assert [ast.unparse(ast.parse(t).body[-1]) for t in tests] == solution_asserts, "the tests are the solution's asserts"
        stub = e.stub(earlier)
        assert "\n" not in stub.strip(), "a one-line stub"
        with pytest.raises(NotImplementedError, match=f"Exercise {re.escape(e.number)}"):
            exec(stub, {})
        earlier |= course._stores(ast.parse(e.code))


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_test_runs_after_the_solution_in_a_fresh_namespace_of_its_names(name):
    """A test reads only the parameters, builtins, its own imports and what the solutions bound."""
    known = set(runs.parameters_cell(runs.BOOK / f"{name}.ipynb")) | set(dir(builtins))
    for e in course.exercises(chapter(name), name):
        body, tests = e.split()
        known |= course._stores(ast.parse(body))
        for t in tests:
            tree = ast.parse(t)
            assert course._loads(tree) <= known | course._stores(tree), f"{e.label}: {t!r}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_becomes_plain_markdown(name):
    """Every MyST construct the chapter uses has a plain-Markdown form (glue values stand in as any name)."""

    class AnyGlue(dict):
        def __contains__(self, key):
            return True

        def __missing__(self, key):
            return {"text/plain": "0.5", "text/markdown": "*md*"}

    ctx = course.book_context(runs.BOOK)
    ctx.glue = AnyGlue()
    nb = chapter(name)
    texts = [course._source(c) for c in nb["cells"][: course.exercise_section(nb, name) + 1] if c["cell_type"] == "markdown"]
    texts += [t for e in course.exercises(nb, name) for t in (e.text, e.answer)]
    for text in texts:
        plain = course.plain_markdown(text, ctx, name)
        assert course.leftover_myst(plain) == [], plain[:300]


# -- MyST to Markdown ------------------------------------------------------------------------------------


@pytest.fixture
def ctx():
    c = course.book_context(runs.BOOK)
    c.glue = {"acc": {"text/plain": "0.91234"}, "name": {"text/plain": "'resnet'", "text/markdown": "`resnet`"}}
    return c


def test_glue_roles_become_the_glued_values(ctx):
    text = "accuracy {glue:text}`acc:.2f`, raw {glue:text}`acc`, network {glue:md}`name` and {glue}`name`"
    assert course.plain_markdown(text, ctx, "01_theory") == "accuracy 0.91, raw 0.91234, network `resnet` and `resnet`"
    with pytest.raises(course.CourseError, match="no value named 'missing'"):
        course.plain_markdown("{glue:text}`missing`", ctx, "01_theory")


def test_cross_references_become_links_between_the_notebooks(ctx):
    label = next(iter(course.exercises(chapter("01_theory"), "01_theory"))).label
    assert course.plain_markdown(f"see {{ref}}`{label}`", ctx, "01_theory") == "see Exercise 1.1"
    assert course.plain_markdown(f"{{ref}}`the answer <{label}>`", ctx, "02_synthetic_mi") == \
        "the answer ([Exercise 1.1](01_theory.ipynb))"
    assert course.plain_markdown("{doc}`01_theory`", ctx, "02_synthetic_mi") == \
        f"[{ctx.titles['01_theory']}](01_theory.ipynb)"


def test_citations_are_author_year_and_listed(ctx):
    text = course.plain_markdown("as shown {cite}`qin2019rethinking,barber2003im`", ctx, "01_theory")
    assert text == "as shown (Qin et al. 2019; Barber & Agakov 2003)"
    assert "Rethinking Softmax" in course.references_cell(ctx) and ctx.cited == ["qin2019rethinking", "barber2003im"]
    with pytest.raises(course.CourseError, match="nosuchkey"):
        course.plain_markdown("{cite}`nosuchkey`", ctx, "01_theory")


def test_admonitions_become_quotes_and_unknown_markup_is_refused(ctx):
    text = "```{admonition} Learning goals\n:class: tip\n\n- one\n- two\n```"
    assert course.plain_markdown(text, ctx, "01_theory") == "> **Learning goals**\n>\n> - one\n> - two"
    assert course.plain_markdown(":::{warning}\nCareful.\n:::", ctx, "01_theory") == "> **Warning**\n>\n> Careful."
    with pytest.raises(course.CourseError, match=r"directive \{figure\}"):
        course.plain_markdown("```{figure} a.png\n```", ctx, "01_theory")
    with pytest.raises(course.CourseError, match=r"role \{abbr\}"):
        course.plain_markdown("{abbr}`CE (cross-entropy)`", ctx, "01_theory")


# -- solutions that cannot become tests ------------------------------------------------------------------


def test_a_solution_without_an_assert_or_with_a_moving_target_is_refused():
    with pytest.raises(course.CourseError, match="asserts nothing"):
        course.Exercise("ex-a", "1.1", "A", "text", code="x = 1\nprint(x)\n").split()
    with pytest.raises(course.CourseError, match=r"reads \['x'\]"):
        course.Exercise("ex-a", "1.1", "A", "text", code="x = 1\nassert x == 1\nx = 2\n").split()


def test_the_hint_names_what_the_tests_read_and_what_is_reused():
    e = course.Exercise("ex-b", "3.2", "B", "text", code=(
        "import numpy as np\nfrom infocam import information\n"
        "gain = {'small': 1.0, 'large': 2.0}\nscore = helper(gain)\n"
        "assert gain['large'] > gain['small'] and np.isfinite(score)\n"))
    hint = e.hint(earlier={"helper"}, later={"gain": "3.3", "np": "3.4"})
    assert hint.startswith("Exercise 3.2: compute `gain` (keys include 'large', 'small') and `score`")
    assert "`infocam.information`" in hint and "reuse `helper` from an earlier exercise" in hint
    assert hint.endswith("; keep `gain` for Exercise 3.3.")
    body, (test,) = e.split()
    assert "assert" not in body and test.splitlines() == [
        "import numpy as np", "assert gain['large'] > gain['small'] and np.isfinite(score)"]


def test_solution_lines_left_in_a_notebook_are_found():
    e = course.Exercise("ex-a", "1.1", "A", "text", answer="The reading is largest at lambda zero, where it is tight.",
                        code="readings = [compute_the_reading(lam) for lam in grid]\nassert readings[0] > 0\n")
    clean = {"cells": [{"cell_type": "code", "source": "raise NotImplementedError('x')"}]}
    leaky = {"cells": [{"cell_type": "code", "source": "readings = [compute_the_reading(lam) for lam in grid]"}]}
    assert course.solutions_in_notebook(clean, [e]) == []
    assert course.solutions_in_notebook(leaky, [e]) == ["readings = [compute_the_reading(lam) for lam in grid]"]
    assert course.solutions_in_notebook(leaky, [e], chapter_text="readings = [compute_the_reading(lam) for lam in grid]") == []
    markup = {"cells": [{"cell_type": "markdown", "source": "````{solution-start} ex-a\n````"}]}
    assert course.solutions_in_notebook(markup, [e]) == ["{solution-start}"]


# -- the instructor page and the student edition -----------------------------------------------------------


def test_instructor_page_is_in_the_book_but_not_the_student_edition(tmp_path):
    files = re.findall(r"file:\s*(\S+)", (runs.REPO / "_toc.yml").read_text())
    assert "book/instructor" in files
    nb = json.loads((runs.BOOK / "instructor.ipynb").read_text())
    assert nb["metadata"]["mystnb"]["execution_mode"] == "force"
    code = "\n".join(course._source(c) for c in nb["cells"] if c["cell_type"] == "code")
    assert "course.load_report()" in code and "course.syllabus_markdown" in code
    notebooks = tmp_path / "student"
    notebooks.mkdir()
    editions.student_config(runs.REPO / "_config.yml", tmp_path / "_config.yml", tmp_path / "cache",
                            runs.BOOK / "_ext", notebooks)
    student_files = [c["file"] for c in yaml.safe_load((tmp_path / "_toc.yml").read_text())["chapters"]]
    assert "book/instructor" not in student_files and student_files == [f for f in files if f != "book/instructor"]
    cfg = yaml.safe_load((tmp_path / "_config.yml").read_text())
    assert cfg["sphinx"]["config"]["student_notebooks"] == str(notebooks.resolve())


def test_student_edition_check_refuses_instructor_pages_and_broken_notebook_links(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    page = tmp_path / "book" / "01_theory.html"
    page.write_text('<div class="exercise">x</div><a href="../notebooks/01_theory.ipynb" download>01_theory.ipynb</a>')
    with pytest.raises(editions.PrintError, match="01_theory.ipynb"):
        editions.check_student(tmp_path)
    (tmp_path / "notebooks" / "01_theory.ipynb").write_text("{}")
    assert editions.check_student(tmp_path) == 1 and editions.notebook_links(tmp_path) == {"01_theory.ipynb": True}
    (tmp_path / "book" / "instructor.html").write_text("syllabus")
    with pytest.raises(editions.PrintError, match="instructor"):
        editions.check_student(tmp_path)


def test_syllabus_and_grading_tables_read_the_measured_report():
    report = {"cores": 2, "threads": "2", "otter_grader": "7.0.0", "chapters": {"01_theory": {
        "title": "Theory", "goals": ["derive a bound"], "prerequisites": "None.",
        "exercises": [{"label": "ex-a", "number": "1.1", "title": "A", "points": 2, "tests": 2, "manual_points": 2}],
        "solutions": {"score": 2.0, "possible": 2.0, "seconds": 12.3, "tests": {}},
        "student": {"score": 0.0, "possible": 2.0, "seconds": 9.0, "tests": {}}, "default_seconds": 250.0}}}
    syllabus = course.syllabus_markdown(report)
    assert "| 01. Theory | • derive a bound | None. | 1.1 A (2 + 2 written) | 12 s / 4.2 min |" in syllabus
    assert "| 01_theory | 1 | 2 (2) | 2 | 2/2 in 12 s | 0/2 in 9 s |" in course.grading_markdown(report)


# -- the whole pipeline on a one-exercise chapter, graded by otter ------------------------------------------

TINY = {
    "cells": [
        {"cell_type": "markdown", "id": "a", "metadata": {}, "source": "# A tiny chapter\n\nAs {cite}`qin2019rethinking` show."},
        {"cell_type": "markdown", "id": "b", "metadata": {}, "source":
            "```{admonition} Learning goals\n:class: tip\n\n- square a number\n- glue it\n- test it\n```\n\n"
            "**Prerequisites.** None."},
        {"cell_type": "code", "id": "c", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
         "source": "n = 3\nscale = 10\n"},
        {"cell_type": "code", "id": "d", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "from myst_nb import glue\nglue('n_squared', n * n, display=False)\n"},
        {"cell_type": "markdown", "id": "e", "metadata": {}, "source": "The square is {glue:text}`n_squared`."},
        {"cell_type": "markdown", "id": "f", "metadata": {}, "source": "## Exercises\n\nSolve them."},
        {"cell_type": "markdown", "id": "g", "metadata": {}, "source":
            "```{exercise} Square it\n:label: ex-tiny-square\n\n*Predict* $n^2$, then observe.\n```"},
        {"cell_type": "markdown", "id": "h", "metadata": {}, "source":
            "````{solution-start} ex-tiny-square\n:class: dropdown\n````\n\nTHE-WRITTEN-ANSWER-OF-THE-SQUARE is n times n."},
        {"cell_type": "code", "id": "i", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "square_of_n_value = n ** 2  # SOLUTION-CODE-MARKER\nassert square_of_n_value == n * n\n"
                   "assert square_of_n_value >= 0\n"},
        {"cell_type": "markdown", "id": "j", "metadata": {}, "source": "````{solution-end}\n````"},
        {"cell_type": "markdown", "id": "k", "metadata": {}, "source":
            "```{exercise} Why squares\n:label: ex-tiny-why\n\nOpen question: why is a square never negative? See {ref}`ex-tiny-square`.\n```"},
        {"cell_type": "markdown", "id": "l", "metadata": {}, "source":
            "````{solution-start} ex-tiny-why\n:class: dropdown\n````\n\nBECAUSE-A-PRODUCT-OF-EQUAL-SIGNS is positive."},
        {"cell_type": "code", "id": "m", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "import math\nroot_of_square_value = math.sqrt(square_of_n_value)  # SECOND-SOLUTION-MARKER\n"
                   "assert math.isclose(root_of_square_value, abs(n))\n"},
        {"cell_type": "markdown", "id": "o", "metadata": {}, "source": "````{solution-end}\n````"},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                 "language_info": {"name": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.fixture(scope="module")
def tiny_course(tmp_path_factory):
    """A one-chapter book, executed into its own cache as the book build does, then built into a course."""
    root = tmp_path_factory.mktemp("tinycourse")
    book = root / "book"
    (book / "params").mkdir(parents=True)
    shutil.copy(runs.BOOK / "references.bib", book)
    (book / "01_tiny.ipynb").write_text(json.dumps(TINY, indent=1))
    (book / "params" / "01_tiny.yml").write_text("smoke:\n  n: 2\ndefault:\n  n: 3\n  scale: 10\npaper: {}\n"
                                                 "constraints:\n  n: {type: integer}\n  scale: {type: integer}\n")
    executed = bookbuild.execute_chapter(str(book / "01_tiny.ipynb"), 120, {})
    cache = root / "cache"
    bookbuild.cache_executed(cache, str(book / "01_tiny.ipynb"), executed["notebook"], executed["seconds"])
    report = course.build(book, cache, root / "course", jobs=1, log=lambda line: None)
    return root / "course", report


@pytest.mark.slow
def test_student_notebook_has_stubs_plain_markdown_and_no_solution(tiny_course):
    out, _ = tiny_course
    student = json.loads((out / "student" / "01_tiny.ipynb").read_text())
    text = "\n".join(course._source(c) for c in student["cells"])
    for marker in ("SOLUTION-CODE-MARKER", "SECOND-SOLUTION-MARKER", "THE-WRITTEN-ANSWER", "BECAUSE-A-PRODUCT"):
        assert marker not in text
    assert course.leftover_myst(text) == [] and editions.SOLUTION_MARKER.search(text) is None
    assert "The square is 9." in text, "glued numbers are the book run's values"
    assert "(Qin et al. 2019)" in text and "See Exercise 1.1." in text and "> **Learning goals**" in text
    stubs = [c for c in student["cells"] if c["cell_type"] == "code" and "NotImplementedError" in course._source(c)]
    assert len(stubs) == 2 and "`square_of_n_value`" in course._source(stubs[0])
    assert "keep `square_of_n_value` for Exercise 1.2" in course._source(stubs[0])
    assert "reuse `square_of_n_value`" in course._source(stubs[1])
    smoke = next(course._source(c) for c in student["cells"] if "use_smoke_profile = True" in course._source(c))
    assert "    n = 2" in smoke and "scale" not in smoke
    checks = [course._source(c) for c in student["cells"] if course._source(c).startswith("grader.check(")]
    assert checks == ['grader.check("ex_tiny_square")', 'grader.check("ex_tiny_why")']
    assert "written answer" in text and "_Type your answer here" in text
    instructor = json.loads((out / "solutions" / "01_tiny.ipynb").read_text())
    assert "SOLUTION-CODE-MARKER" in "\n".join(course._source(c) for c in instructor["cells"])


@pytest.mark.slow
def test_otter_gives_the_solutions_every_point_and_the_stubs_none(tiny_course):
    out, report = tiny_course
    entry = report["chapters"]["01_tiny"]
    assert entry["solutions"]["tests"] == {"ex_tiny_square": 2.0, "ex_tiny_why": 1.0}
    assert entry["student"]["tests"] == {"ex_tiny_square": 0.0, "ex_tiny_why": 0.0}
    assert [(e["points"], e["manual_points"]) for e in entry["exercises"]] == [(2, 0), (1, course.MANUAL_POINTS)]
    assert json.loads((out / "course.json").read_text()) == report
    assert entry["default_seconds"] is not None and entry["goals"] == ["square a number", "glue it", "test it"]


@pytest.mark.slow
def test_a_folder_of_submissions_is_graded_into_one_table(tiny_course, tmp_path):
    out, _ = tiny_course
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)
    student = json.loads((out / "student" / "01_tiny.ipynb").read_text())
    for cell in student["cells"]:
        if "NotImplementedError" in course._source(cell) and "square_of_n_value`" in course._source(cell).split(";")[0]:
            cell["source"] = "square_of_n_value = n * n\n"
    (submissions / "alice" / "01_tiny.ipynb").write_text(json.dumps(student))
    shutil.copy(out / "student" / "01_tiny.ipynb", submissions / "bob.ipynb")
    table = course.grade_folder(submissions, out / "autograder", log=lambda line: None).read_text().splitlines()
    assert table[0] == "submission,chapter,score,possible,ex_tiny_square,ex_tiny_why"
    assert table[1:] == ["alice/01_tiny.ipynb,01_tiny,2.0,3.0,2.0,0.0", "bob.ipynb,01_tiny,0.0,3.0,0.0,0.0"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(course.CourseError, match="no .ipynb"):
        course.grade_folder(tmp_path / "empty", out / "autograder")


@pytest.mark.slow
def test_student_edition_links_each_chapter_s_student_notebook(tmp_path):
    """A one-chapter book built as ``make book-student`` builds it: the chapter's Exercises section links its
    student notebook, the notebook is in the site, and the edition's check passes."""
    root = tmp_path / "book_root"
    (root / "book").mkdir(parents=True)
    shutil.copytree(runs.BOOK / "_ext", root / "book" / "_ext")
    shutil.copy(runs.BOOK / "references.bib", root / "book")
    cfg = yaml.safe_load((runs.REPO / "_config.yml").read_text())
    for key in ("mathjax_path", "html_static_path"):
        cfg["sphinx"]["config"].pop(key, None)
    (root / "_config.yml").write_text(yaml.safe_dump(cfg))
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/01_tiny\n"
                                   "  - file: book/instructor\n")
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "book" / "instructor.md").write_text("# For instructors\n")
    nb = json.loads(json.dumps(TINY))
    nb["cells"][0]["source"] = "# A tiny chapter"  # no citation: the tiny book has no bibliography page
    (root / "book" / "01_tiny.ipynb").write_text(json.dumps(nb))
    notebooks = tmp_path / "student"
    notebooks.mkdir()
    (notebooks / "01_tiny.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    out = root / "_build" / "student"
    editions.student_config(root / "_config.yml", out / "_config.yml", root / "_build" / ".jupyter_cache",
                            root / "book" / "_ext", notebooks)
    done = subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "-W", "--keep-going",
                           "--config", str(out / "_config.yml"), "--toc", str(out / "_toc.yml"), "--path-output", str(out)],
                          capture_output=True, text=True, cwd=root, timeout=600, env={**os.environ, "INFOCAM_PROGRESS": "0"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    html_dir = out / "_build" / "html"
    page = (html_dir / "book" / "01_tiny.html").read_text()
    assert 'href="../notebooks/01_tiny.ipynb" download' in page and "SOLUTION-CODE-MARKER" not in page
    assert editions.notebook_links(html_dir) == {"01_tiny.ipynb": True}
    assert not (html_dir / "book" / "instructor.html").exists()
    assert editions.check_student(html_dir) == 2
