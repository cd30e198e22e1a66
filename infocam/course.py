"""Course material built from the chapters: student notebooks and an autograder (``make course``).

The chapters are the one source. For every chapter this module writes

* a **student notebook**: the chapter with every solution removed, each exercise's code replaced
  by a stub that raises ``NotImplementedError`` with a one-line hint, and MyST-only markup (glue
  roles, exercise / solution / admonition directives, ``{doc}``, ``{ref}`` and ``{cite}`` roles)
  turned into plain Markdown that JupyterLab and Colab render; glued numbers become the values of
  the book's own run (its execution cache), and a cell after the parameters switches to the
  ``smoke`` profile so the notebook runs in seconds;
* an **autograder** for `otter-grader <https://otter-grader.readthedocs.io>`_: the tests are the
  top-level ``assert`` statements each solution already makes (one test, one point, per assert);
  an open-ended exercise keeps a test of what can be checked and gets a manually graded written
  answer.

Why otter-grader rather than nbgrader: one master notebook gives the student notebook, the
instructor's notebook and a self-contained autograder zip (tests in the notebook's metadata, so a
student downloads one file and checks answers with ``grader.check``); grading a notebook needs no
database, course directory or JupyterHub service; and ``otter run`` grades a submission in the
current environment, without Docker. nbgrader needs its course-folder layout and database and
checks hidden test cells that the instructor writes next to each answer, which would copy the
solutions' assertions by hand instead of reading them from the chapter.

We build an otter "master notebook" (assign format) from each chapter, let ``otter assign`` strip
it, then grade with ``otter run`` (otter's own non-containerised grader) both the instructor's
solutions (every test must pass) and the untouched student notebook (every test must fail, and
each must be reported). Run times and scores go to ``<out>/course.json`` for the instructor page.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from infocam import runs
from infocam.utils import atomic_write_text

MANUAL_POINTS = 2  # points of the written answer of an open-ended exercise, graded by hand
# An exercise whose text asks for an argument or an opinion has a part no test can check.
MANUAL_CUE = re.compile(r"open question|explain|show that", re.IGNORECASE)
SOLUTION_START = re.compile(r"\{solution-start\}\s+(\S+)")
SOLUTION_END = "{solution-end}"


class CourseError(RuntimeError):
    """A chapter cannot be turned into course material as it stands (names the chapter and why)."""


# -- exercises as the chapters hold them ----------------------------------------------------------


@dataclass
class Exercise:
    """One exercise of a chapter: its prompt, its written answer and its solution code."""

    label: str
    number: str  # "1.2": chapter number, then the exercise's place in it
    title: str
    text: str  # the ``{exercise}`` cell (MyST)
    answer: str = ""  # the written answer after ``{solution-start}`` (MyST)
    code: str = ""  # the solution's code cells, joined

    @property
    def name(self) -> str:
        """The otter question name (a Python identifier)."""
        return self.label.replace("-", "_")

    @property
    def manual(self) -> bool:
        """Whether part of the answer is written and graded by hand."""
        return bool(MANUAL_CUE.search(self.text))

    def split(self) -> tuple[str, list[str]]:
        """The solution without its top-level asserts, and one test per assert.

        A test is the assert with the solution's imports it needs. Refused (``CourseError``) where
        the asserts cannot be moved after the solution unchanged: none at the top level, one that
        binds a name, or a name an assert reads that the solution rebinds later.
        """
        tree = ast.parse(self.code)
        lines = self.code.splitlines()
        asserts = [s for s in tree.body if isinstance(s, ast.Assert)]
        if not asserts:
            raise CourseError(f"{self.label}: its solution asserts nothing at the top level, so no test can be made")
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        drop, tests = set(), []
        for i, stmt in enumerate(tree.body):
            if not isinstance(stmt, ast.Assert):
                continue
            if any(isinstance(n, ast.NamedExpr) for n in ast.walk(stmt)):
                raise CourseError(f"{self.label}: an assert binds a name (:=), so it cannot become a test")
            read = _loads(stmt)
            later = set().union(*(_stores(s) for s in tree.body[i + 1:]))
            if read & later:
                raise CourseError(f"{self.label}: an assert reads {sorted(read & later)}, which the solution "
                                  "changes afterwards, so the assert cannot run after the solution")
            needed = [ast.get_source_segment(self.code, s) for s in imports if _stores(s) & read]
            tests.append("\n".join(needed + [ast.get_source_segment(self.code, stmt)]))
            drop |= set(range(stmt.lineno - 1, stmt.end_lineno))
        body = "\n".join(line for j, line in enumerate(lines) if j not in drop).strip() + "\n"
        return body, tests

    @property
    def points(self) -> int:
        """Autograded points: one per test."""
        return len(self.split()[1])

    def hint(self, earlier: set[str], later: dict[str, str] | None = None) -> str:
        """One line for the stub: the names the tests read, the modules the solution uses, what it
        takes from earlier exercises (``earlier``: names their solutions bind) and what later ones
        take from it (``later``: name -> the number of the exercise that reads it)."""
        body, tests = self.split()
        body_tree, test_trees = ast.parse(body), [ast.parse(t) for t in tests]
        bound = _stores(body_tree)
        read = set().union(*(_loads(t) for t in test_trees))
        imported = set().union(*(_stores(s) for s in ast.walk(body_tree) if isinstance(s, (ast.Import, ast.ImportFrom))))
        wanted = [n for n in _ordered_names(test_trees) if n in read and n in bound and n not in imported]
        keys = {}
        for tree in test_trees:
            for node in ast.walk(tree):
                if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                        and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, (str, float))):
                    keys.setdefault(node.value.id, []).append(node.slice.value)
        named = [f"`{n}`" + (f" (keys include {', '.join(repr(k) for k in dict.fromkeys(keys[n]))})" if n in keys else "")
                 for n in wanted]
        parts = [f"Exercise {self.number}: compute {_join(named)}; the tests read {'it' if len(named) == 1 else 'them'}"]
        modules = _infocam_modules(body_tree)
        if modules:
            parts.append(f"use {_join(modules)}")
        reused = sorted((_loads(body_tree) & earlier) - bound)
        if reused:
            parts.append(f"reuse {_join(f'`{n}`' for n in reused)} from an earlier exercise")
        kept: dict[str, list[str]] = {}
        for n, number in (later or {}).items():
            if n in bound and n not in imported:
                kept.setdefault(number, []).append(f"`{n}`")
        parts += [f"keep {_join(names)} for Exercise {number}" for number, names in kept.items()]
        return "; ".join(parts) + "."

    def stub(self, earlier: set[str], later: dict[str, str] | None = None) -> str:
        """The student's cell: raises until the student writes the solution."""
        return f"raise NotImplementedError({self.hint(earlier, later)!r})\n"


def _loads(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _stores(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _ordered_names(trees: list[ast.AST]) -> list[str]:
    """Names in the order they first appear in the source of ``trees``."""
    seen = {}
    for tree in trees:
        for node in sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name)), key=lambda n: (n.lineno, n.col_offset)):
            seen.setdefault(node.id, None)
    return list(seen)


def _infocam_modules(tree: ast.AST) -> list[str]:
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("infocam"):
            found += [f"`{node.module}.{a.name}`" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [f"`{a.name}`" for a in node.names if a.name.startswith("infocam")]
    return found


def _join(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


_EXERCISE = re.compile(r"(`{3,}|:{3,})\{exercise\}[ \t]*([^\n]*)\n:label: (\S+)")


def exercise_section(nb: dict, chapter: str) -> int:
    """Index of the chapter's one ``## Exercises`` heading cell."""
    found = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown" and _source(c).startswith("## Exercises")]
    if len(found) != 1:
        raise CourseError(f"{chapter}: expected one '## Exercises' heading, found {len(found)}")
    return found[0]


def exercises(nb: dict, chapter: str) -> list[Exercise]:
    """The chapter's exercises in order, read from the cells after its ``## Exercises`` heading."""
    number = int(chapter.split("_", 1)[0])
    found: list[Exercise] = []
    current = None
    for cell in nb["cells"][exercise_section(nb, chapter) + 1:]:
        text = _source(cell)
        if cell["cell_type"] == "code":
            if current is None:
                raise CourseError(f"{chapter}: a code cell among the exercises outside a solution: {text[:60]!r}")
            current.code += text.rstrip("\n") + "\n"
        elif (m := _EXERCISE.search(text)) is not None:
            found.append(Exercise(m.group(3), f"{number}.{len(found) + 1}", m.group(2).strip(), text))
        elif (m := SOLUTION_START.search(text)) is not None:
            current = next((e for e in found if e.label == m.group(1)), None)
            if current is None:
                raise CourseError(f"{chapter}: a solution of an unknown exercise {m.group(1)!r}")
            current.answer = _after_directive(text)
        elif SOLUTION_END in text:
            current = None
        else:
            raise CourseError(f"{chapter}: a cell after the exercises that is neither an exercise nor a solution")
    missing = [e.label for e in found if not e.code]
    if missing:
        raise CourseError(f"{chapter}: exercises without a code solution: {missing}")
    return found


def _after_directive(text: str) -> str:
    """The Markdown after a cell's leading directive (a solution-start's written answer)."""
    m = re.match(r"\s*(`{3,}|:{3,})\{[^}]+\}[^\n]*\n.*?^\1[ \t]*$", text, re.S | re.M)
    return text[m.end():].strip() if m else text.strip()


# -- MyST to plain Markdown ---------------------------------------------------------------------------

_DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                        re.S | re.M)
_ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<content>[^`]*)`")
_TARGET = re.compile(r"^\([\w:-]+\)=[ \t]*\n", re.M)
_ADMONITIONS = {"admonition": None, "note": "Note", "tip": "Tip", "warning": "Warning", "important": "Important",
                "seealso": "See also", "hint": "Hint", "caution": "Caution", "attention": "Attention"}


@dataclass
class MystContext:
    """What the MyST roles refer to: glued outputs, exercises and chapter titles of the whole book, the bibliography."""

    glue: dict = field(default_factory=dict)  # name -> output data (mime type -> value)
    exercises: dict = field(default_factory=dict)  # label -> (chapter, Exercise)
    titles: dict = field(default_factory=dict)  # chapter -> its first heading
    bib: dict = field(default_factory=dict)  # key -> {"authors": [last names], "year", "title", "where"}
    cited: list = field(default_factory=list)  # keys cited so far, in order


def plain_markdown(text: str, ctx: MystContext, chapter: str) -> str:
    """``text`` with its MyST-only markup replaced by plain Markdown (``CourseError`` on markup it does not know)."""
    text = _TARGET.sub("", text)
    text = _DIRECTIVE.sub(lambda m: _directive(m, ctx, chapter), text)
    text = _ROLE.sub(lambda m: _role(m.group("role"), m.group("content"), ctx, chapter), text)
    return text


def _directive(m: re.Match, ctx: MystContext, chapter: str) -> str:
    name, arg = m.group("name"), m.group("arg").strip()
    body_lines = m.group("body").splitlines()
    options = {}
    while body_lines and re.match(r":[\w-]+:", body_lines[0]):
        key, _, value = body_lines.pop(0)[1:].partition(":")
        options[key] = value.strip()
    body = plain_markdown("\n".join(body_lines).strip(), ctx, chapter)
    if name == "exercise":
        _, exercise = ctx.exercises[options["label"]]
        return f"### Exercise {exercise.number}: {plain_markdown(arg, ctx, chapter)}\n\n{body}"
    if name in _ADMONITIONS:
        title = plain_markdown(arg, ctx, chapter) if name == "admonition" else _ADMONITIONS[name]
        quoted = "\n".join(f"> {line}".rstrip() for line in body.splitlines())
        return f"> **{title}**\n>\n{quoted}"
    raise CourseError(f"{chapter}: no plain-Markdown form for the MyST directive {{{name}}}")


def _role(role: str, content: str, ctx: MystContext, chapter: str) -> str:
    explicit = re.fullmatch(r"(?P<text>.*\S)\s*<(?P<target>[^>]+)>", content, re.S)
    text, target = (explicit.group("text"), explicit.group("target")) if explicit else (None, content)
    if role.startswith("glue"):
        key, _, fmt = target.partition(":") if role != "glue:md" else (target, "", "")
        if key not in ctx.glue:
            raise CourseError(f"{chapter}: the book's run glued no value named {key!r}")
        data = ctx.glue[key]
        if role == "glue:md" or (role != "glue:text" and "text/markdown" in data):
            return data["text/markdown"]
        from myst_nb.core.variables import format_plain_text

        return format_plain_text(data["text/plain"], fmt)
    if role == "doc":
        other = Path(target).name
        title = text or ctx.titles.get(other, other)
        return f"[{title}]({other}.ipynb)"
    if role in ("ref", "numref"):
        if target not in ctx.exercises:
            raise CourseError(f"{chapter}: {{{role}}} to {target!r}, which is not an exercise of the book")
        where, exercise = ctx.exercises[target]
        name = f"Exercise {exercise.number}"
        link = "" if where == chapter else f"{where}.ipynb"
        return f"{text} ([{name}]({link}))" if text and link else f"{text} ({name})" if text else \
            (f"[{name}]({link})" if link else name)
    if role.startswith("cite"):
        keys = [k.strip() for k in target.split(",")]
        unknown = [k for k in keys if k not in ctx.bib]
        if unknown:
            raise CourseError(f"{chapter}: cites {unknown}, which book/references.bib lacks")
        ctx.cited += [k for k in keys if k not in ctx.cited]
        return "(" + "; ".join(_author_year(ctx.bib[k]) for k in keys) + ")"
    if role == "math":
        return f"${content}$"
    raise CourseError(f"{chapter}: no plain-Markdown form for the MyST role {{{role}}}")


def _author_year(entry: dict) -> str:
    names = entry["authors"]
    who = names[0] if len(names) == 1 else f"{names[0]} & {names[1]}" if len(names) == 2 else f"{names[0]} et al."
    return f"{who} {entry['year']}"


def read_bib(path: Path) -> dict:
    """The bibliography as ``{key: {"authors", "year", "title", "where"}}`` (pybtex, which Jupyter Book's bibtex uses)."""
    from pybtex.database import parse_file

    def plain(s: str) -> str:
        return s.replace("{", "").replace("}", "")

    out = {}
    for key, entry in parse_file(str(path)).entries.items():
        fields = entry.fields
        out[key] = {"authors": [plain(" ".join(p.last_names)) for p in entry.persons.get("author", [])],
                    "year": fields.get("year", "n.d."), "title": plain(fields.get("title", "")),
                    "where": plain(fields.get("journal") or fields.get("booktitle") or fields.get("publisher")
                                   or fields.get("howpublished") or fields.get("url") or "")}
    return out


def references_cell(ctx: MystContext) -> str:
    lines = ["## References", ""]
    for key in ctx.cited:
        e = ctx.bib[key]
        lines.append(f"- {', '.join(e['authors'])} ({e['year']}). *{e['title']}*." + (f" {e['where']}." if e["where"] else ""))
    return "\n".join(lines) + "\n"


def leftover_myst(text: str) -> list[str]:
    """MyST-only markup left in Markdown (empty for a clean student notebook)."""
    return [m.group(0) for m in re.finditer(r"\{[\w:-]+\}`|^(`{3,}|:{3,})\{[\w:-]+\}|^\([\w:-]+\)=", text, re.M)]


# -- the glued values of the book's own run ---------------------------------------------------------------


def glued(executed: dict) -> dict:
    """``{name: data}`` of the ``myst_nb.glue`` outputs of an executed notebook (the prefix of hidden ones removed)."""
    values = {}
    for cell in executed["cells"]:
        for out in cell.get("outputs", []):
            meta = (out.get("metadata") or {}).get("scrapbook")
            if meta:
                cut = len(meta.get("mime_prefix", ""))
                values[meta["name"]] = {k[cut:]: v for k, v in out.get("data", {}).items()}
    return values


def _as_nbformat(nb: dict):
    import nbformat

    return nbformat.reads(json.dumps(nb), as_version=4)  # as myst-nb reads it, so the cache hash matches


def executed_chapter(nb: dict, chapter: str, cache: Path) -> dict:
    """The chapter as the book last executed it (default profile), from the build's execution cache."""
    import nbformat
    from jupyter_cache import get_cache

    try:
        _, merged = get_cache(str(cache)).merge_match_into_notebook(_as_nbformat(nb))
    except KeyError:
        raise CourseError(f"{chapter} is not in the execution cache {cache} as it is now: run "
                          "`make course` (it executes the chapters first) or `make book`") from None
    return json.loads(nbformat.writes(merged))


def cached_seconds(nb: dict, cache: Path) -> float | None:
    """Seconds the cached default-profile run of a chapter took (as ``infocam execute`` measured it)."""
    from jupyter_cache import get_cache

    try:
        record = get_cache(str(cache)).match_cache_notebook(_as_nbformat(nb))
    except KeyError:
        return None
    return (record.data or {}).get("execution_seconds")


# -- the master notebook otter assign reads ---------------------------------------------------------------


def _cell(kind: str, text: str, **meta) -> dict:
    cell = {"cell_type": kind, "metadata": meta, "source": text}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _raw(text: str) -> dict:
    return _cell("raw", text)


def _config(header: str, **config) -> dict:
    import yaml

    return _raw(f"# {header}\n" + yaml.safe_dump(config, sort_keys=False))


def smoke_cell(chapter: str, book_dir: Path) -> str:
    """A cell that sets the smoke profile's values (``book/params/<chapter>.yml``) unless switched off."""
    params = runs.resolve_parameters(chapter, "smoke", book_dir=book_dir)
    defaults = runs.parameters_cell(book_dir / f"{chapter}.ipynb")
    lines = ["# The smoke profile: the same chapter in seconds to a minute, small numbers. Set to False to run the",
             "# book's values of the cell above (minutes; see the instructor page for measured times).",
             "use_smoke_profile = True", "if use_smoke_profile:"]
    lines += [f"    {k} = {v!r}" for k, v in params.items() if defaults.get(k) != v]
    if lines[-1] == "if use_smoke_profile:":
        lines.append("    pass")
    return "\n".join(lines) + "\n"


HEADER = """# {title} — student notebook

This notebook is chapter {number} of the infocam book with the exercises' solutions removed: each exercise
has a cell that raises `NotImplementedError` with a hint; replace it with your code, then run the
`grader.check(...)` cell under it. Exercises marked *written* are graded by hand. It runs at the **smoke
profile** (seconds; see the cell after the parameters), so your numbers are small-scale; the numbers quoted
in the text are those of the book's own run (default profile). Needs the `infocam` package and
`otter-grader` (see the book's instructor page).
"""


def master_notebook(nb: dict, chapter: str, book_dir: Path, cache: Path, ctx: MystContext) -> dict:
    """The chapter ``nb`` as an otter-assign master notebook: plain Markdown, a smoke cell, exercises as questions."""
    ctx.glue = glued(executed_chapter(nb, chapter, cache))
    ctx.cited = []
    section = exercise_section(nb, chapter)
    exs = exercises(nb, chapter)
    md = lambda text: plain_markdown(text, ctx, chapter)  # noqa: E731
    cells = [_config("ASSIGNMENT CONFIG", name=chapter, init_cell=True, check_all_cell=False, export_cell=False,
                     run_tests=False, solutions_pdf=False, template_pdf=False, generate=True,
                     show_question_points=True, tests={"files": False, "ok_format": True}),
             _cell("markdown", HEADER.format(title=ctx.titles[chapter], number=int(chapter[:2])))]
    first_code = True
    for cell in nb["cells"][:section + 1]:
        if cell["cell_type"] == "markdown":
            cells.append(_cell("markdown", md(_source(cell))))
        elif cell["cell_type"] == "code":
            cells.append(_cell("code", _source(cell), **cell.get("metadata", {})))
            if first_code:
                cells.append(_cell("code", smoke_cell(chapter, book_dir)))
                first_code = False
    earlier: set[str] = set()
    for i, e in enumerate(exs):
        cells += _question_cells(e, earlier, _later_uses(e, exs[i + 1:]), md)
        earlier |= _stores(ast.parse(e.code))
    if ctx.cited:
        cells.append(_cell("markdown", references_cell(ctx)))
    for i, cell in enumerate(cells):
        cell["id"] = f"{chapter[:2]}-{i}"
    return {"cells": cells, "metadata": nb["metadata"], "nbformat": 4, "nbformat_minor": 5}


def _later_uses(exercise: Exercise, later: list[Exercise]) -> dict[str, str]:
    """Names the solution binds that a later solution reads without binding them: name -> that exercise's number."""
    bound = _stores(ast.parse(exercise.split()[0]))
    uses: dict[str, str] = {}
    for other in later:
        body = ast.parse(other.split()[0])
        for name in sorted((_loads(body) - _stores(body)) & bound):
            uses.setdefault(name, other.number)
    return uses


def _question_cells(e: Exercise, earlier: set[str], later: dict[str, str], md) -> list[dict]:
    """An exercise as otter questions: the prompt, the solution with its stub, its tests; and, for an
    open-ended exercise, a manually graded written answer."""
    body, tests = e.split()
    answer = [] if e.manual else [_cell("markdown", md(e.answer))]
    cells = [_config("BEGIN QUESTION", name=e.name, points={"each": 1}), _cell("markdown", md(e.text)),
             _raw("# BEGIN SOLUTION"), *answer,
             _cell("code", f"# BEGIN SOLUTION NO PROMPT\n{body}# END SOLUTION\n"
                           f'""" # BEGIN PROMPT\n{e.stub(earlier, later)}"""; # END PROMPT\n'),
             _raw("# END SOLUTION"), _raw("# BEGIN TESTS"), *[_cell("code", t) for t in tests], _raw("# END TESTS"),
             _raw("# END QUESTION")]
    if e.manual:
        cells += [_config("BEGIN QUESTION", name=f"{e.name}_written", manual=True, points=MANUAL_POINTS),
                  _cell("markdown", f"**Exercise {e.number}, written answer** (graded by hand): answer the "
                                    "question of the exercise in a few sentences."),
                  _raw("# BEGIN SOLUTION"), _cell("markdown", md(e.answer)), _raw("# END SOLUTION"),
                  _raw("# END QUESTION")]
    return cells


# -- otter: assign, grade --------------------------------------------------------------------------------


def book_context(book_dir: Path) -> MystContext:
    """Exercises and titles of every chapter (for cross-references) and the bibliography."""
    ctx = MystContext(bib=read_bib(book_dir / "references.bib"))
    for chapter in runs.chapters(book_dir):
        nb = json.loads((book_dir / f"{chapter}.ipynb").read_text())
        heading = next((_source(c) for c in nb["cells"] if c["cell_type"] == "markdown"
                        and _source(c).startswith("# ")), f"# {chapter}")
        ctx.titles[chapter] = heading.splitlines()[0][2:].strip()
        for e in exercises(nb, chapter):
            ctx.exercises[e.label] = (chapter, e)
    return ctx


def syllabus_entry(nb: dict, chapter: str, ctx: MystContext) -> dict:
    """Learning goals, prerequisites and exercises of a chapter, as plain text for the instructor page."""
    opening = next(_source(c) for c in nb["cells"] if "{admonition} Learning goals" in _source(c))
    goals = [line[2:].strip().rstrip(";.") for line in opening.splitlines() if line.startswith("- ")]
    prereq = re.search(r"\*\*Prerequisites\.\*\*\s*(.*)", opening, re.S)
    prereq_text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", plain_markdown(prereq.group(1).strip(), ctx, chapter)) \
        if prereq else ""
    return {"title": ctx.titles[chapter], "goals": goals, "prerequisites": prereq_text,
            "exercises": [{"label": e.label, "number": e.number, "title": plain_markdown(e.title, ctx, chapter),
                           "points": e.points, "tests": e.points, "manual_points": MANUAL_POINTS if e.manual else 0}
                          for e in exercises(nb, chapter)]}


def assign(master: dict, chapter: str, out: Path) -> dict[str, Path]:
    """Run ``otter assign`` on a master notebook; the student notebook, the instructor's and the autograder zip."""
    from otter.assign import main as otter_assign

    work = Path(tempfile.mkdtemp(prefix=f"infocam-assign-{chapter}-"))
    try:
        (work / f"{chapter}.ipynb").write_text(json.dumps(master, indent=1))
        with contextlib.redirect_stdout(io.StringIO()) as said:
            try:
                otter_assign(str(work / f"{chapter}.ipynb"), str(work / "dist"), no_pdfs=True, no_run_tests=True)
            except Exception as exc:
                raise CourseError(f"{chapter}: otter assign failed: {exc}\n{said.getvalue()[-2000:]}") from exc
        files = {"student": out / "student" / f"{chapter}.ipynb", "solutions": out / "solutions" / f"{chapter}.ipynb",
                 "autograder": out / "autograder" / f"{chapter}.zip"}
        for path in files.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "dist" / "student" / f"{chapter}.ipynb", files["student"])
        shutil.copy(work / "dist" / "autograder" / f"{chapter}.ipynb", files["solutions"])
        (zipped,) = (work / "dist" / "autograder").glob("*.zip")
        shutil.copy(zipped, files["autograder"])
        return files
    finally:
        shutil.rmtree(work, ignore_errors=True)


def grade(notebook: Path, autograder: Path) -> dict:
    """Grade one notebook with otter's own grader (``otter run``: no container, this environment).

    ``{"score", "possible", "seconds", "tests": {question: score}}``; the notebook's errors are the
    student's, so a cell that raises costs that question's points and grading goes on.
    """
    from otter.api import grade_submission

    started = time.perf_counter()
    results = grade_submission(str(notebook), str(autograder), quiet=True)
    seconds = time.perf_counter() - started
    if results.catastrophic_error is not None:
        raise CourseError(f"{notebook}: otter could not grade it: {results.catastrophic_error}")
    return {"score": float(results.total), "possible": float(results.possible), "seconds": round(seconds, 1),
            "tests": {name: float(results.get_score(name)) for name in results.test_files}}


def check_grades(chapter: str, exs: list[Exercise], solutions: dict, student: dict) -> None:
    """The instructor's solutions get every point, the untouched student notebook none, every question reported."""
    expected = {e.name: float(e.points) for e in exs}
    for who, result, want in (("solutions", solutions, expected), ("student notebook", student, dict.fromkeys(expected, 0.0))):
        if result["tests"] != want:
            wrong = {q: result["tests"].get(q) for q in set(want) | set(result["tests"]) if result["tests"].get(q) != want.get(q)}
            raise CourseError(f"{chapter}: the {who} should score {want} but otter gave {wrong} on those questions")


# -- the whole course ------------------------------------------------------------------------------------


def _grade_all(tasks: dict, jobs: int) -> dict:
    """``grade(*args)`` for every task, on ``jobs`` worker processes (each notebook's kernel keeps the
    environment's thread settings, so two gradings share two cores as the book's chapters do)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if jobs <= 1:
        return {key: grade(*args) for key, args in tasks.items()}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {key: pool.submit(grade, *args) for key, args in tasks.items()}
        return {key: future.result() for key, future in futures.items()}


def build(book_dir: Path, cache: Path, out: Path, chapters: list[str] | None = None, jobs: int = 2, log=print) -> dict:
    """Student notebooks, instructor's notebooks, autograders and ``course.json`` for ``chapters`` (all by default),
    each chapter graded both ways (on ``jobs`` processes); written to a temporary folder renamed to ``out``
    when every check passed."""
    book_dir, out = Path(book_dir), Path(out)
    chapters = chapters or runs.chapters(book_dir)
    ctx = book_context(book_dir)
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    report = {"otter_grader": _otter_version(), "cores": os.cpu_count(), "threads": os.environ.get("OMP_NUM_THREADS"),
              "chapters": {}}
    started = time.perf_counter()
    try:
        built = {}
        for chapter in chapters:
            source = json.loads((book_dir / f"{chapter}.ipynb").read_text())  # read once: chapters change
            files = assign(master_notebook(source, chapter, book_dir, cache, ctx), chapter, tmp)
            exs = exercises(source, chapter)
            left = solutions_in_notebook(json.loads(files["student"].read_text()), exs, chapter_text(source, chapter))
            if left:
                raise CourseError(f"{chapter}: the student notebook still holds solution text: {left[:3]}")
            built[chapter] = (source, exs, files)
        graded = _grade_all({(chapter, who): (files[who], files["autograder"]) for chapter, (_, _, files) in built.items()
                             for who in ("solutions", "student")}, jobs)
        for chapter, (source, exs, files) in built.items():
            solved, untouched = graded[chapter, "solutions"], graded[chapter, "student"]
            check_grades(chapter, exs, solved, untouched)
            report["chapters"][chapter] = {**syllabus_entry(source, chapter, ctx), "solutions": solved,
                                           "student": untouched, "default_seconds": cached_seconds(source, cache)}
            log(f"{chapter}: {len(exs)} exercises, {int(solved['possible'])} autograded points in "
                f"{sum(e.points for e in exs)} tests (+{sum(MANUAL_POINTS for e in exs if e.manual)} by hand); "
                f"solutions {solved['score']:g}/{solved['possible']:g} in {solved['seconds']:.0f} s, "
                f"student notebook {untouched['score']:g}/{untouched['possible']:g} in {untouched['seconds']:.0f} s")
        report["jobs"] = jobs
        report["seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_text(tmp / "course.json", json.dumps(report, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def solutions_in_notebook(nb: dict, exs: list[Exercise], chapter_text: str = "") -> list[str]:
    """Solution text left in a student notebook: markup of a solution, or a line of a solution's code or answer
    that the chapter's own text (``chapter_text``, before its exercises) does not hold."""
    from infocam.editions import solution_lines, solutions_in_text

    text = "\n".join(_source(c) for c in nb["cells"])
    lines = [line for e in exs for line in solution_lines(e.code + "\n" + e.answer)]
    return solutions_in_text(text, [line for line in lines if line not in chapter_text])


def chapter_text(nb: dict, chapter: str) -> str:
    """The chapter's cells before its exercises, joined."""
    return "\n".join(_source(c) for c in nb["cells"][:exercise_section(nb, chapter)])


def _otter_version() -> str:
    from otter import __version__

    return __version__


def grade_folder(folder: Path, autograders: Path, log=print) -> Path:
    """Grade every notebook under ``folder`` with the autograder of its chapter (from the notebook's otter
    metadata); write ``folder/grades.csv`` (one row per submission, one column per question)."""
    import csv

    folder = Path(folder)
    rows, columns = [], []
    submissions = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not submissions:
        raise CourseError(f"{folder}: no .ipynb submissions in it")
    for path in submissions:
        meta = json.loads(path.read_text()).get("metadata", {}).get("otter", {})
        chapter = meta.get("assignment_name")
        zipped = Path(autograders) / f"{chapter}.zip"
        if not chapter or not zipped.exists():
            raise CourseError(f"{path}: not a student notebook of this course (no autograder for {chapter!r} in "
                              f"{autograders}; run `make course`)")
        result = grade(path, zipped)
        log(f"{path.relative_to(folder)}: {result['score']:g}/{result['possible']:g} ({chapter}, {result['seconds']:.0f} s)")
        rows.append({"submission": str(path.relative_to(folder)), "chapter": chapter, "score": result["score"],
                     "possible": result["possible"], **result["tests"]})
        columns += [q for q in result["tests"] if q not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["submission", "chapter", "score", "possible", *columns])
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(folder / "grades.csv", buffer.getvalue())


# -- the instructor page -----------------------------------------------------------------------------------

REPORT = runs.REPO / "_build" / "course" / "course.json"


def load_report(path: Path = REPORT) -> dict | None:
    """What the last ``make course`` built and measured (None where it has not run)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def _seconds(value) -> str:
    return "not run" if value is None else f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def syllabus_markdown(report: dict) -> str:
    """The syllabus: chapter, learning goals, prerequisites, exercises with points, measured run times."""
    rows = ["| Chapter | Learning goals | Prerequisites | Exercises (points) | Run time: smoke / default |",
            "|---|---|---|---|---|"]
    for chapter, c in report["chapters"].items():
        goals = "<br>".join(f"• {g}" for g in c["goals"])
        exs = "<br>".join(f"{e['number']} {e['title']} ({e['points']}" + (f" + {e['manual_points']} written" if
                                                                         e["manual_points"] else "") + ")"
                          for e in c["exercises"])
        rows.append(f"| {chapter[:2]}. {c['title']} | {goals} | {c['prerequisites']} | {exs} | "
                    f"{_seconds(c['solutions']['seconds'])} / {_seconds(c['default_seconds'])} |")
    return "\n".join(rows) + "\n"


def grading_markdown(report: dict) -> str:
    """Per chapter: exercises, points, tests and what grading the solutions and the untouched notebook gave."""
    rows = ["| Chapter | Exercises | Autograded points (tests) | Written points | Solutions | Untouched student notebook |",
            "|---|---|---|---|---|---|"]
    for chapter, c in report["chapters"].items():
        tests = sum(e["tests"] for e in c["exercises"])
        written = sum(e["manual_points"] for e in c["exercises"])
        s, u = c["solutions"], c["student"]
        rows.append(f"| {chapter} | {len(c['exercises'])} | {s['possible']:g} ({tests}) | {written} | "
                    f"{s['score']:g}/{s['possible']:g} in {_seconds(s['seconds'])} | "
                    f"{u['score']:g}/{u['possible']:g} in {_seconds(u['seconds'])} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m infocam.course build [--out DIR] [--cache DIR] [CHAPTER ...] | grade FOLDER [--autograders DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m infocam.course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="student notebooks and autograders from the chapters, graded both ways")
    b.add_argument("chapters", nargs="*", help="chapters (default: all)")
    b.add_argument("--out", type=Path, default=runs.REPO / "_build" / "course")
    b.add_argument("--cache", type=Path, default=runs.REPO / "_build" / ".jupyter_cache",
                   help="the book's execution cache (the glued values of its run)")
    b.add_argument("--jobs", type=int, default=2, help="notebooks graded at once (default 2)")
    g = sub.add_parser("grade", help="grade every notebook in a folder of submissions into FOLDER/grades.csv")
    g.add_argument("folder", type=Path)
    g.add_argument("--autograders", type=Path, default=runs.REPO / "_build" / "course" / "autograder")
    args = parser.parse_args(argv)
    os.environ.pop("INFOCAM_METRICS_DIR", None)  # a smoke run must not overwrite the book's metrics
    try:
        if args.command == "build":
            chapters = [runs.resolve_chapter(c) for c in args.chapters]
            started = time.perf_counter()
            build(runs.BOOK, args.cache, args.out, chapters, jobs=max(1, args.jobs))
            print(f"course material: {args.out} ({time.perf_counter() - started:.0f} s)")
        else:
            if not args.folder.is_dir():
                raise CourseError(f"{args.folder}: not a folder of submissions")
            print(f"grades: {grade_folder(args.folder, args.autograders)}")
    except (CourseError, runs.ParameterError) as exc:
        sys.exit(f"infocam.course: {exc}")


if __name__ == "__main__":
    main()
