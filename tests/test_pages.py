"""How the book's pages read: the front page, tables that fit, the collapsed parameters cell, the footer, citing.

The layout tests build a small book with the book's own configuration, extensions and CSS (a page
with a wide claims table, a wide plain table, a long equation and a parameters cell) and measure it
in headless Chromium at 1280 px and on a 390-px phone; where the real book has been built
(``_build/html``), its pages are measured too. Without Chromium (Debian: ``apt-get install
chromium``) those tests skip and say so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import infocam
from infocam import browser, runs, summary
from infocam.editions import find_chromium
from tests.conftest import VENDORED_MATHJAX, book_skeleton

sys.path.insert(0, str(runs.BOOK / "_ext"))
import pages  # noqa: E402

JB = Path(sys.executable).with_name("jupyter-book")
BUILT = runs.REPO / "_build" / "html"
WIDTHS = (1280, 390)
needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no chromium on PATH: the layout is measured in headless Chromium "
                                           "(Debian: `apt-get install chromium`)")

# Measures a page: sideways scrolling, tables (or their scroll box) outside the viewport, a claims
# table's claim/verdict columns out of view before and after scrolling its box to the far end, and
# (at the widths asked) display equations wider than their column.
LAYOUT_JS = r"""
var W = document.documentElement.clientWidth, out = [], doc = document.documentElement;
if (doc.scrollWidth > W + 1) out.push('the page scrolls sideways: ' + doc.scrollWidth + ' px > ' + W + ' px');
function scroller(el) {
  for (var p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    var s = getComputedStyle(p).overflowX; if (s === 'auto' || s === 'scroll') return p; }
  return null; }
function inside(r, box) { return r.left >= box.left - 1 && r.right <= box.right + 1; }
document.querySelectorAll('main table').forEach(function (t, i) {
  var r = t.getBoundingClientRect(); if (!r.width) return;
  var box = scroller(t), outer = box ? box.getBoundingClientRect() : r;
  var view = {left: 0, right: W};
  if (!inside(outer, view)) out.push('table ' + i + (box ? ' (its scroll box)' : '') + ' spans ' + Math.round(outer.left) + '..' + Math.round(outer.right) + ' px');
  var heads = Array.prototype.slice.call(t.querySelectorAll('tr:first-child th'));
  heads.forEach(function (th) {
    var name = th.textContent.trim().toLowerCase();
    if (name.indexOf('verdict') !== 0 && name !== 'claim') return;
    var seen = box ? {left: Math.max(0, outer.left), right: Math.min(W, outer.right)} : view;
    if (!inside(th.getBoundingClientRect(), seen)) out.push('table ' + i + ': column "' + name + '" out of view');
    if (box) { box.scrollLeft = box.scrollWidth;
      if (!inside(th.getBoundingClientRect(), seen)) out.push('table ' + i + ': column "' + name + '" scrolls out of view');
      box.scrollLeft = 0; }
  });
});
if (CHECK_MATH) document.querySelectorAll('main mjx-container[display="true"]').forEach(function (m, i) {
  if (m.scrollWidth > m.clientWidth + 1) out.push('display equation ' + i + ' is ' + m.scrollWidth + ' px wide in a ' + m.clientWidth + '-px column');
});
return {width: W, problems: out, tables: document.querySelectorAll('main table').length};
"""


def layout(page: Path, width: int) -> dict:
    return browser.probe(page, LAYOUT_JS.replace("CHECK_MATH", "true" if width >= 1280 else "false"), width=width,
                         height=900, delay_ms=1500)


# -- the front page, the summary and citing ------------------------------------------------------------


def test_front_page_is_computed_from_this_builds_metrics_after_the_chapters():
    nb = json.loads((runs.BOOK / "intro.ipynb").read_text())
    assert nb["metadata"]["mystnb"]["execution_mode"] == "force"  # left to the build, which reads it after 0*_
    assert pages.forces_execution(runs.BOOK / "intro.ipynb") and pages.forces_execution(runs.BOOK / "summary.ipynb")
    assert not pages.forces_execution(runs.BOOK / "01_theory.ipynb")
    assert sorted(["book/intro", "book/summary", *(f"book/{c}" for c in runs.chapters())])[-2:] == ["book/intro",
                                                                                                   "book/summary"]
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "summary.load_metrics(summary.metrics_dir())" in code and "summary.front_page_table" in code
    assert re.search(r"^root:\s*book/intro\s*$", (runs.REPO / "_toc.yml").read_text(), re.M)


def test_every_claim_links_to_a_section_that_exists():
    for claim in summary.CLAIMS:
        title = summary.SECTIONS[claim.read.__name__]
        nb = json.loads((runs.BOOK / f"{claim.chapter}.ipynb").read_text())
        headings = [line.lstrip("#").strip() for c in nb["cells"] if c["cell_type"] == "markdown"
                    for line in "".join(c["source"]).splitlines() if line.startswith("#")]
        assert title in headings, f"{claim.chapter} has no section {title!r} (summary.SECTIONS)"


def test_front_page_rows_agree_with_the_summary_and_name_the_baseline(tmp_path):
    def row(label, role, top1, v2):
        return {"label": label, "role": role, "top1_loc": top1, "maxboxacc_v2": v2, "top1_loc_sd": 0.01,
                "maxboxacc_v2_sd": 0.01}
    cub = {"seeds": [0, 1], "methods": {"cam": row("CAM", "cam", 0.30, 0.40),
                                        "infocam-mean-others-k1": row("infoCAM mean-others k=1", "infocam", 0.34, 0.45),
                                        "centre": row("centre Gaussian", "prior", 0.37, 0.50)}}
    metrics = {"04_infocam": {"localisation": {"cub": cub}, "seeds": 2}}
    front = summary.front_page_table(metrics)
    full = summary.reproduction_table(metrics)
    assert list(front["verdict"]) == list(full["verdict"])
    row = front[front["claim"].str.contains("frozen backbone")].iloc[0]
    assert row["baseline (no network)"].startswith("centre Gaussian Top-1 Loc 37.0 %, above infoCAM's 34.0 %")
    assert 'href="04_infocam.html#real-birds-with-real-boxes-cub-200-2011"' in row["where"]
    assert (front.loc[front["claim"].str.contains("MNIST"), "baseline (no network)"] == summary.NO_BASELINE).all()
    html = summary.front_page_html(front)
    assert html.count("<tr>") == len(front) + 1 and "infocam-claims" in html
    assert "<th>verdict (this book)</th>" in html.split("</th>", 2)[1] + "</th>"  # the second column


def test_data_sources_say_which_chapters_are_synthetic():
    metrics = {"01_theory": {"data_source": "exact discrete distributions"},
               "05_trained_wsol": {"data_source": "CUB [generated fixture]"}}
    table = summary.data_sources(metrics, ["01_theory", "03_imbalanced", "05_trained_wsol"]).set_index("chapter")
    assert table.loc["chapter 1", "kind"].startswith("synthetic by design")
    assert table.loc["chapter 3", "data this build used"] == "not run in this build"
    assert "generated fixtures otherwise" in table.loc["chapter 5", "kind"]


def test_recipes_table_lists_every_shipped_recipe():
    table = summary.recipes_table()
    shipped = sorted(p.stem for p in (Path(infocam.__file__).parent / "recipes").glob("*.yml"))
    assert list(table["recipe"]) == shipped and all(table["what"].str.len() > 0)
    assert (table["command"] == "infocam train " + table["recipe"]).all()


def test_citation_file_names_the_book_and_the_paper():
    cff = yaml.safe_load((runs.REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["authors"] and cff["message"]
    assert cff["version"] == infocam.__version__
    paper = cff["references"][0]
    assert "Rethinking Softmax" in paper["title"] and [a["family-names"] for a in paper["authors"]] == [
        "Qin", "Kim", "Gedeon"]
    assert any(i["value"] == "arXiv:1911.10688" for i in paper["identifiers"])
    intro = (runs.BOOK / "intro.ipynb").read_text()
    assert "## How to cite" in intro and "CITATION.cff" in intro


def test_parameters_prompt_says_how_to_change_them():
    show, hide = pages.parameters_prompt("03_imbalanced")
    assert "infocam run 03_imbalanced -p key=value" in show and "\n" not in show and hide


# -- a small book built with the book's configuration ----------------------------------------------------

WIDE_NB = {
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
         "source": "seed = 0\nnum_classes = 5\n"},
        {"cell_type": "markdown", "metadata": {}, "source": "# Wide things\n\n$$\n" + " + ".join(
            rf"\frac{{\partial f_{{{i}}}(x)}}{{\partial x_{{{i}}}}}" for i in range(40)) + "\n$$\n"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "\n".join([
            "import pandas as pd",
            "from IPython.display import HTML, display",
            "from infocam import summary",
            "t = summary.reproduction_table({})",
            "t['note'] = 'a long explanation of why the verdict is what it is ' * 4",
            "cols = ['claim', 'verdict', 'question', 'paper', 'ours', 'seeds', 'scale', 'note', 'chapter']",
            "with pd.option_context('display.max_colwidth', None):",
            "    display(t[cols].style.hide(axis='index').set_table_attributes('class=\"infocam-claims\"'))",
            "display(HTML(summary.front_page_html(summary.front_page_table({}))))",
            "display(pd.DataFrame([[1000.5 * i * j for j in range(24)] for i in range(3)]))",
        ])},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                 "language_info": {"name": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.fixture(scope="module")
def small_book(tmp_path_factory):
    """The book's _config.yml, extensions and CSS on two pages; built once (about a minute)."""
    root = book_skeleton(tmp_path_factory.mktemp("pagesbook"), ["wide"], static=True)
    (root / "book" / "intro.md").write_text("# Intro\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (root / "book" / "wide.ipynb").write_text(json.dumps(WIDE_NB))
    done = subprocess.run([str(JB), "build", str(root), "-W", "--keep-going"], capture_output=True, text=True,
                          cwd=root, timeout=900, env={**os.environ, "INFOCAM_PROGRESS": "0"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "_build" / "html"


@pytest.mark.slow
def test_parameters_cell_is_collapsed_behind_one_line(small_book):
    html = (small_book / "book" / "wide.html").read_text()
    details = re.search(r'<details class="[^"]*hide above-input">(.*?)</details>', html, re.S)
    assert details and "infocam run wide -p key=value" in details.group(1) and "num_classes" in details.group(1)
    assert "infocam-parameters" in html


@pytest.mark.slow
def test_footer_names_version_and_commit(small_book):
    html = (small_book / "book" / "intro.html").read_text()
    assert re.search(rf"infocam {re.escape(infocam.__version__)}, commit (\w{{10}}|unknown)", html)
    assert "_static/infocam.css" in html and (small_book / "_static" / "infocam.css").exists()


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_wide_tables_scroll_in_their_box_with_claim_and_verdict_in_view(small_book, width):
    measured = layout(small_book / "book" / "wide.html", width)
    assert measured["width"] == width and measured["tables"] >= 3
    problems = [p for p in measured["problems"] if not p.startswith("display equation")]  # a contrived one
    assert not problems, problems


@pytest.mark.slow
@needs_chromium
def test_the_layout_check_can_fail(small_book, tmp_path):
    page = tmp_path / "bare.html"
    page.write_text("<html><body><main><table><tr><th>claim</th><th>" + "x" * 3 + "</th>" + "<th>col</th>" * 60
                    + "<th>verdict</th></tr></table></main></body></html>")
    problems = layout(page, 390)["problems"]
    assert any("sideways" in p for p in problems) and any('"verdict" out of view' in p for p in problems)


def _built_pages() -> list[Path]:
    return sorted((BUILT / "book").glob("*.html")) if (BUILT / "book").is_dir() else []


@pytest.mark.slow
@needs_chromium
@pytest.mark.skipif(not _built_pages(), reason="the book is not built here (`make book` writes _build/html)")
@pytest.mark.parametrize("width", WIDTHS)
def test_built_book_pages_fit_the_viewport(width):
    problems = {p.name: layout(p, width)["problems"] for p in _built_pages()}
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}
