"""Sphinx extension for the course material: the student edition and an always-fresh summary page.

* ``student_edition = True`` (set by ``make book-student``) removes every ``sphinx-exercise``
  solution from the doctree, *including* the code cells between ``solution-start`` and
  ``solution-end``. sphinx-exercise's own ``hide_solutions`` drops only the directive's title and
  text and leaves the gated code cells in the page, so it cannot make a hand-out on its own.
* Chapters' metrics reach the summary page: before a document is read (and its notebook
  executed), ``INFOCAM_CHAPTER`` is set to its name, so the kernel's ``infocam.runs.record``
  writes ``$INFOCAM_METRICS_DIR/<chapter>.json`` (the Makefile sets the folder).
* The printable single page gets every HTML node handler: Sphinx gives a ``singlehtml`` translator
  only the handlers registered under that builder's name once any extension registers one, so
  nodes registered for ``html`` alone (myst-nb's hidden-cell node) would fail to render.
* ``book/summary`` is re-read on every build: it tabulates the metrics the chapters wrote in this
  build, which change without its source changing (its notebook metadata forces re-execution).
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from sphinx.transforms import SphinxTransform
from sphinx_exercise.nodes import solution_node
from sphinx_exercise.transforms import MergeGatedSolutions

ALWAYS_REREAD = ("book/summary",)


class DropSolutions(SphinxTransform):
    """Remove solutions (after sphinx-exercise has merged the gated ones into one node)."""

    default_priority = MergeGatedSolutions.default_priority + 1

    def apply(self):
        if not self.config.student_edition:
            return
        for node in list(self.document.findall(solution_node)):
            node.parent.remove(node)


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
    app.add_transform(DropSolutions)
    app.connect("source-read", _name_the_chapter)
    app.connect("env-get-outdated", _always_reread)
    app.connect("builder-inited", _html_handlers_for_singlehtml)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
