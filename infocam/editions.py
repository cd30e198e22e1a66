"""The book's other editions: the student edition (no solutions) and the printable book.

``make book-student`` builds the book with the config :func:`student_config` writes: the book's
``_config.yml`` with ``student_edition: true`` (``book/_ext/course.py`` then drops every
solution, code cells included) and the main build's execution cache, so nothing re-executes.

``make book-print`` builds the book with Sphinx's ``singlehtml`` builder (every chapter, its
executed outputs, figures and MathJax-typeset equations on one page) and then calls
:func:`print_book`, which prints that page to PDF with headless Chromium, offline, after MathJax
has typeset the equations, and checks the result. Why these builders: Jupyter Book's ``pdfhtml``
downloads a Chromium through pyppeteer (no network here) and ``pdflatex`` needs a TeX
installation and re-renders every notebook output for LaTeX; ``singlehtml`` needs nothing beyond
the HTML build, and Debian's ``chromium`` package prints it exactly as a browser shows it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from infocam.utils import atomic_write_bytes, atomic_write_text

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RAW_MATH = re.compile(r"\\\(|\\\[|\$\$")


class PrintError(RuntimeError):
    """The printable book could not be produced or failed its checks."""


INSTRUCTOR_PAGES = ("book/instructor",)  # in the book, never in the student edition


def student_config(config: Path, out: Path, cache: Path, extensions: Path, notebooks: Path | None = None) -> Path:
    """Write the student edition's ``_config.yml``: the book's config with solutions dropped, and
    beside it its ``_toc.yml``: the book's without the instructor pages.

    Jupyter Book resolves ``local_extensions`` against the config file's folder, so the
    extension folder is written as an absolute path. ``notebooks``: the folder of student
    notebooks (``make course``) that each chapter links for download.
    """
    import yaml

    cfg = yaml.safe_load(Path(config).read_text())
    sphinx = cfg.setdefault("sphinx", {})
    sphinx.setdefault("config", {})["student_edition"] = True
    if notebooks is not None:
        sphinx["config"]["student_notebooks"] = str(Path(notebooks).resolve())
    sphinx["local_extensions"] = {name: str(Path(extensions).resolve()) for name in sphinx.get("local_extensions") or ["course"]}
    cfg.setdefault("execute", {})["cache"] = str(Path(cache).resolve())
    atomic_write_text(out, yaml.safe_dump(cfg, sort_keys=False))
    toc_file = Path(config).parent / "_toc.yml"
    if toc_file.exists():
        toc = yaml.safe_load(toc_file.read_text())
        toc["chapters"] = [c for c in toc.get("chapters", []) if c.get("file") not in INSTRUCTOR_PAGES]
        atomic_write_text(Path(out).parent / "_toc.yml", yaml.safe_dump(toc, sort_keys=False))
    return Path(out)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def page_of(singlehtml_dir: Path) -> Path:
    """The one page of a ``singlehtml`` build, with its static files and figures reachable.

    Sphinx writes the page under the root document's name (``book/intro.html``) but links
    ``_static/`` and ``_images/`` as if it lay at the top, so links to them are added beside it.
    """
    singlehtml_dir = Path(singlehtml_dir)
    pages = [p for p in singlehtml_dir.rglob("*.html")
             if not any(part.startswith("_") for part in p.relative_to(singlehtml_dir).parts) and p.name != "index.html"]
    if len(pages) != 1:
        raise PrintError(f"{singlehtml_dir}: expected one page from the singlehtml builder, found {len(pages)}; "
                         "build it with `jupyter-book build . --builder singlehtml`")
    page = pages[0]
    if page.parent != singlehtml_dir:
        for folder in singlehtml_dir.glob("_*"):
            link = page.parent / folder.name
            if folder.is_dir() and not link.exists():
                link.symlink_to(os.path.relpath(folder, page.parent))
    return page


def missing_assets(page: Path) -> list[str]:
    """Local images the page shows that do not exist (figures that would print blank)."""
    html = page.read_text(errors="replace")
    refs = re.findall(r"""<img[^>]*\ssrc=["']([^"'#?]+)""", html)
    return sorted({r for r in refs if "//" not in r and not r.startswith("data:") and not (page.parent / r).exists()})


def _chromium(chromium: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="infocam-chromium-") as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
               "--virtual-time-budget=60000", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def typeset_equations(page: Path, chromium: str, timeout: float = 600) -> int:
    """Number of equations MathJax typeset in ``page`` (``mjx-container`` elements in the DOM)."""
    dom = _chromium(chromium, "--dump-dom", page.resolve().as_uri(), timeout=timeout).stdout
    return dom.count("<mjx-container")


def print_pdf(page: Path, pdf: Path, chromium: str, timeout: float = 600) -> Path:
    """Print ``page`` to ``pdf`` with headless Chromium (written atomically)."""
    with tempfile.TemporaryDirectory(prefix="infocam-print-") as tmp:
        out = Path(tmp) / "book.pdf"
        done = _chromium(chromium, "--no-pdf-header-footer", f"--print-to-pdf={out}", page.resolve().as_uri(),
                         timeout=timeout)
        if not out.exists() or out.stat().st_size == 0:
            raise PrintError(f"chromium did not write a PDF: {done.stderr[-2000:]}")
        return atomic_write_bytes(pdf, out.read_bytes())


def pdf_text(pdf: Path) -> str | None:
    """Text of a PDF via poppler's ``pdftotext``, or None where it is not installed."""
    if not shutil.which("pdftotext"):
        return None
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def print_book(singlehtml_dir: Path, pdf: Path) -> dict:
    """Check the single page and print it to ``pdf``; return what was checked.

    Without Chromium the single HTML page is the printable book (print it from any browser) and
    no PDF is written. With Chromium, MathJax must have typeset the page's equations and, where
    ``pdftotext`` exists, no raw TeX delimiter may be left in the PDF's text.
    """
    page = page_of(singlehtml_dir)
    html = page.read_text(errors="replace")
    missing = missing_assets(page)
    if missing:
        raise PrintError(f"{page}: {len(missing)} linked files are missing, e.g. {missing[:3]}")
    report = {"page": str(page), "pdf": None, "figures": html.count("<img"), "equations_typeset": None,
              "raw_tex_in_pdf": None}
    chromium = find_chromium()
    if chromium is None:
        return report
    math_in_page = html.count('class="math')
    report["equations_typeset"] = typeset_equations(page, chromium)
    if math_in_page and not report["equations_typeset"]:
        raise PrintError(f"{page}: MathJax typeset none of its equations; run `make data` (local MathJax) first")
    report["pdf"] = str(print_pdf(page, Path(pdf), chromium))
    text = pdf_text(Path(pdf))
    if text is not None:
        report["raw_tex_in_pdf"] = len(RAW_MATH.findall(text))
        if report["raw_tex_in_pdf"]:
            raise PrintError(f"{pdf}: {report['raw_tex_in_pdf']} raw TeX delimiters in the PDF text (untypeset math)")
    return report


# What a solution leaves in a page (sphinx-exercise's HTML) or in a notebook (its MyST directive).
SOLUTION_MARKER = re.compile(r'class="solution[ "]|Solution to Exercise|\{solution(?:-start)?\}')


def solutions_in(html_dir: Path) -> list[str]:
    """Pages of a built book that still show a solution (empty for a correct student edition)."""
    return sorted(str(p.relative_to(html_dir)) for p in Path(html_dir).rglob("*.html")
                  if SOLUTION_MARKER.search(p.read_text(errors="replace")))


def solution_lines(text: str, min_length: int = 25) -> list[str]:
    """The telling lines of a solution (code or written answer): long enough not to occur by chance."""
    return [line.strip() for line in text.splitlines() if len(line.strip()) >= min_length]


def solutions_in_text(text: str, lines: list[str]) -> list[str]:
    """Solution markup and solution ``lines`` found in ``text`` (a student notebook's cells; empty when clean)."""
    return [m.group(0) for m in SOLUTION_MARKER.finditer(text)] + [line for line in lines if line in text]


def notebook_links(html_dir: Path) -> dict[str, bool]:
    """The student-notebook downloads a built edition links, each with whether its file exists."""
    links = {}
    for page in Path(html_dir).rglob("*.html"):
        for href in re.findall(r'href="([^"]+\.ipynb)" download', page.read_text(errors="replace")):
            links[href.rsplit("/", 1)[-1]] = (page.parent / href).is_file()
    return links


def check_student(html_dir: Path) -> int:
    """Exercises shown in a student edition; :class:`PrintError` if any solution or instructor page is
    left in it, or a student-notebook link leads nowhere."""
    html_dir = Path(html_dir)
    left = solutions_in(html_dir)
    if left:
        raise PrintError(f"{html_dir}: solutions left in the student edition: {', '.join(left)}")
    instructor = [page for page in INSTRUCTOR_PAGES if (html_dir / f"{page}.html").exists()]
    if instructor:
        raise PrintError(f"{html_dir}: instructor pages in the student edition: {', '.join(instructor)}")
    broken = sorted(name for name, ok in notebook_links(html_dir).items() if not ok)
    if broken:
        raise PrintError(f"{html_dir}: links to student notebooks that are not there: {', '.join(broken)}")
    return sum(p.read_text(errors="replace").count('class="exercise') for p in html_dir.rglob("*.html"))


def main(argv: list[str] | None = None) -> None:
    """``python -m infocam.editions student-config OUT | check-student HTML_DIR | print SINGLEHTML_DIR OUT.pdf``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "student-config":
        root = Path(__file__).resolve().parent.parent
        notebooks = root / "_build" / "course" / "student"
        if not notebooks.is_dir():
            raise SystemExit(f"{notebooks} is missing: run `make course` first (the student edition links its notebooks)")
        print(student_config(root / "_config.yml", Path(args[1]), root / "_build" / ".jupyter_cache", root / "book" / "_ext",
                             notebooks))
    elif len(args) == 2 and args[0] == "check-student":
        html_dir = Path(args[1])
        exercises = check_student(html_dir)
        print(f"{html_dir}: {exercises} exercises, no solution, {len(notebook_links(html_dir))} student notebooks linked")
    elif len(args) == 3 and args[0] == "print":
        result = print_book(Path(args[1]), Path(args[2]))
        print(f"printable page: {result['page']} ({result['figures']} figures)")
        if result["pdf"]:
            print(f"PDF: {result['pdf']} ({result['equations_typeset']} equations typeset by MathJax; "
                  f"raw TeX delimiters in its text: {result['raw_tex_in_pdf']})")
        else:
            print("no chromium on PATH, so no PDF: print the page above from a browser (`apt install chromium` adds it)")
    else:
        raise SystemExit("usage: python -m infocam.editions student-config OUT.yml | check-student HTML_DIR | "
                         "print SINGLEHTML_DIR OUT.pdf")


if __name__ == "__main__":
    main()
