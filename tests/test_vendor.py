"""infocam.vendor: the built book must not fetch anything at view time."""

from __future__ import annotations

from infocam.vendor import check_offline


def _site(tmp_path, page: str):
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-svg.js").write_text("/* mathjax */")
    (tmp_path / "index.html").write_text(page)
    return tmp_path


def test_local_site_passes(tmp_path):
    site = _site(tmp_path, '<script defer src="_static/mathjax/tex-svg.js"></script><span class="math notranslate">\\(x\\)</span>')
    assert check_offline(site) == []


def test_remote_script_and_stylesheet_are_reported(tmp_path):
    site = _site(tmp_path, '<script src="https://cdn.example/mathjax.js"></script><link rel="stylesheet" href="//fonts.example/x.css">')
    problems = check_offline(site)
    assert len(problems) == 2 and "remote asset" in problems[0]


def test_missing_mathjax_is_reported(tmp_path):
    (tmp_path / "index.html").write_text("<p>hi</p>")
    assert any("tex-svg.js is missing" in p for p in check_offline(tmp_path))


def test_math_without_mathjax_is_reported(tmp_path):
    site = _site(tmp_path, '<div class="math notranslate nohighlight">\\[x\\]</div>')
    assert any("does not load MathJax" in p for p in check_offline(site))
