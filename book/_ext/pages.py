"""Sphinx extension for how the book's pages read: styles, the parameters cell, the footer, fresh pages.

* ``book/_static/infocam.css`` is added to every page: tables scroll inside their own box instead of
  widening the page, long cells wrap, display equations scroll rather than overflow.
* Every code cell tagged ``parameters`` (papermill's cell, first in each chapter) is collapsed in the
  HTML behind one line that says how to change it (``infocam run <chapter> -p key=value``), so a
  chapter opens with its story; the cell stays first and tagged. Acts on the tag, so no notebook
  carries its own hide setting.
* The footer names the package version and the git commit the book was built from
  (:func:`infocam.runs.provenance`).
* Pages whose notebook forces its own execution (``mystnb.execution_mode: force``: the front page
  and the summary, which read the metrics the chapters wrote in this build) are re-read on every
  build, after the chapters (Sphinx reads documents in name order; ``book/intro`` and
  ``book/summary`` sort after ``book/0*``).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

STATIC = Path(__file__).resolve().parent.parent / "_static"
CSS = "infocam.css"


def parameters_prompt(chapter: str) -> tuple[str, str]:
    """The collapsed and the expanded line of a chapter's parameters cell."""
    return (f"Parameters of this chapter (click to show). To change them: "
            f"infocam run {chapter} -p key=value (or --profile smoke / paper)",
            "Hide the parameters")


class CollapseParameters(SphinxPostTransform):
    """Mark ``parameters`` cells hidden (input) before myst-nb's ``HideInputCells`` (priority 199) wraps them."""

    default_priority = 198
    formats = ("html",)

    def run(self, **kwargs):
        chapter = PurePosixPath(self.env.docname).name
        show, hide = parameters_prompt(chapter)
        for node in self.document.findall(nodes.container):
            tags = (node.get("cell_metadata") or {}).get("tags") or []
            if node.get("nb_element") == "cell_code" and "parameters" in tags and not node.get("hide_mode"):
                node["hide_mode"], node["prompt_show"], node["prompt_hide"] = "input", show, hide
                node["classes"].append("infocam-parameters")


def build_stamp() -> str:
    """``infocam <version>, commit <short sha>`` (``+ local changes`` when the tree differs from it)."""
    from infocam.runs import provenance

    p = provenance()
    commit = (p["git_commit"] or "unknown")[:10]
    return f"infocam {p['infocam']}, commit {commit}" + (" + local changes" if p["git_dirty"] else "")


def _footer(app, config):
    stamp = f'<p class="infocam-build">Built with {build_stamp()}. How to cite: see the front page.</p>'
    options = dict(config.html_theme_options or {})
    options["extra_footer"] = (options.get("extra_footer") or "") + stamp
    config.html_theme_options = options


def _static(app):
    if STATIC.is_dir():
        app.config.html_static_path.append(str(STATIC))
        app.add_css_file(CSS)


def forces_execution(path: Path) -> bool:
    """Whether a notebook's metadata sets ``mystnb.execution_mode: force``."""
    if path.suffix != ".ipynb" or not path.is_file():
        return False
    return (json.loads(path.read_text()).get("metadata", {}).get("mystnb") or {}).get("execution_mode") == "force"


def _reread_forced(app, env, added, changed, removed):
    return [doc for doc in env.found_docs if doc not in changed and forces_execution(Path(env.doc2path(doc)))]


def setup(app):
    app.add_post_transform(CollapseParameters)
    app.connect("config-inited", _footer)
    app.connect("builder-inited", _static)
    app.connect("env-get-outdated", _reread_forced)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
