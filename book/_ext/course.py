"""Sphinx extension for the course material: the student edition and an always-fresh summary page.

* ``student_edition = True`` (set by ``make book-student``) removes every ``sphinx-exercise``
  solution from the doctree, *including* the code cells between ``solution-start`` and
  ``solution-end``. sphinx-exercise's own ``hide_solutions`` drops only the directive's title and
  text and leaves the gated code cells in the page, so it cannot make a hand-out on its own.
* ``student_notebooks`` (a folder of ``make course``'s student notebooks, set with the student
  edition): each chapter's "Exercises" section links its notebook for download, and the notebooks
  are copied into the built site (``notebooks/``).
* Chapters' metrics reach the summary page: before a document is read (and its notebook
  executed), ``INFOCAM_CHAPTER`` is set to its name, so the kernel's ``infocam.runs.record``
  writes ``$INFOCAM_METRICS_DIR/<chapter>.json`` (the Makefile sets the folder).
* The printable single page gets every HTML node handler: Sphinx gives a ``singlehtml`` translator
  only the handlers registered under that builder's name once any extension registers one, so
  nodes registered for ``html`` alone (myst-nb's hidden-cell node) would fail to render.
* ``book/summary`` and ``book/instructor`` are re-read on every build: they tabulate the metrics the
  chapters wrote in this build and what ``make course`` measured, which change without their source
  changing (their notebook metadata forces re-execution).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from docutils import nodes
from sphinx.transforms import SphinxTransform
from sphinx_exercise.nodes import solution_node
from sphinx_exercise.transforms import MergeGatedSolutions

ALWAYS_REREAD = ("book/summary", "book/instructor")
NOTEBOOKS = "notebooks"  # folder of the student notebooks in the built student edition


class DropSolutions(SphinxTransform):
    """Remove solutions (after sphinx-exercise has merged the gated ones into one node)."""

    default_priority = MergeGatedSolutions.default_priority + 1

    def apply(self):
        if not self.config.student_edition:
            return
        for node in list(self.document.findall(solution_node)):
            node.parent.remove(node)


class LinkStudentNotebooks(SphinxTransform):
    """In the student edition, open each chapter's "Exercises" section with a download of its student notebook."""

    default_priority = 500

    def apply(self):
        folder = self.config.student_notebooks
        stem = PurePosixPath(self.env.docname).name
        if not folder or not (Path(folder) / f"{stem}.ipynb").is_file():
            return
        href = "../" * self.env.docname.count("/") + f"{NOTEBOOKS}/{stem}.ipynb"
        for section in self.document.findall(nodes.section):
            title = section.next_node(nodes.title)
            if title is not None and title.astext().startswith("Exercises"):
                link = nodes.raw("", f'<a class="reference download" href="{href}" download>{stem}.ipynb</a>',
                                 format="html")
                note = nodes.paragraph("", "Work on these exercises in the student notebook ", link,
                                       nodes.Text(": the chapter with a stub for each solution and its tests "
                                                  "(otter-grader), for JupyterLab or Colab."))
                section.insert(section.index(title) + 1, note)
                return


def _copy_student_notebooks(app, exception):
    folder = app.config.student_notebooks
    if exception is None and folder and app.builder.format == "html":
        out = Path(app.outdir) / NOTEBOOKS
        out.mkdir(parents=True, exist_ok=True)
        for notebook in Path(folder).glob("*.ipynb"):
            shutil.copy(notebook, out / notebook.name)


def _name_the_chapter(app, docname, source):
    os.environ["INFOCAM_CHAPTER"] = PurePosixPath(docname).name


def _always_reread(app, env, added, changed, removed):
    return [doc for doc in ALWAYS_REREAD if doc in env.found_docs and doc not in changed]


def _html_handlers_for_singlehtml(app):
    if app.builder.name == "singlehtml":
        handlers = app.registry.translation_handlers
        single = handlers.setdefault("singlehtml", {})
        for node, pair in handlers.get("html", {}).items():
            single.setdefault(node, pair)


def setup(app):
    app.setup_extension("sphinx_exercise")
    app.add_config_value("student_edition", False, "env")
    app.add_config_value("student_notebooks", "", "env")
    app.add_transform(DropSolutions)
    app.add_transform(LinkStudentNotebooks)
    app.connect("build-finished", _copy_student_notebooks)
    app.connect("source-read", _name_the_chapter)
    app.connect("env-get-outdated", _always_reread)
    app.connect("builder-inited", _html_handlers_for_singlehtml)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
