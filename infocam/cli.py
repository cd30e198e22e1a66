"""Command line: ``infocam run``, ``infocam prepare``, ``infocam fetch``, ``infocam features``, ``infocam execute``,
``infocam train``, ``infocam profiles``."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from infocam import runs
from infocam.device import DeviceError
from infocam.paths import DataError


def _overrides(items: list[str]) -> dict:
    return dict(runs.parse_override(item) for item in items)


def _warm_features() -> None:
    """``infocam features``: one pass per dataset fills the caches the chapters read (sizes in infocam.features)."""
    from infocam.bookbuild import warm_features

    for line in warm_features():
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infocam", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute a chapter with papermill and write runs/<chapter>/<time>/")
    run.add_argument("chapter", help="e.g. 01_theory, theory or 01")
    run.add_argument("--profile", default="default", choices=runs.PROFILES)
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="override one parameter (value parsed as YAML); repeatable")
    run.add_argument("--runs-dir", type=Path, default=Path("runs"))
    run.add_argument("--book-dir", type=Path, default=runs.BOOK, help="folder holding the chapters (default: book/)")

    prep = sub.add_parser("prepare", help="write chapters with a profile injected (for nbval)")
    prep.add_argument("--profile", default="smoke", choices=runs.PROFILES)
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--book-dir", type=Path, default=runs.BOOK, help="folder holding the chapters (default: book/)")
    prep.add_argument("chapters", nargs="*", help="default: all chapters")

    sub.add_parser("fetch", help="fetch the embedded data and the offline MathJax into the caches")
    sub.add_parser("features", help="warm every frozen-backbone cache the book reads: CUB maps (chapters 3-5), "
                   "CUB cut-point activations and Tiny-ImageNet val maps (chapter 5), each when its folder "
                   "is under the data root")
    ex = sub.add_parser("execute", help="run the feature passes and every chapter concurrently into the book's "
                        "execution cache (make book runs it before jupyter-book build)")
    ex.add_argument("--jobs", type=int, default=None, help="worker processes (default: 2 on 2 cores)")
    ex.add_argument("--cache", type=Path, default=Path("_build/.jupyter_cache"),
                    help="jupyter-cache folder the build reads (default: _build/.jupyter_cache)")
    ex.add_argument("--root", type=Path, default=runs.REPO, help="the book's folder (holding _config.yml, _toc.yml, book/)")
    from infocam.recipe import add_train_command

    add_train_command(sub)
    prof = sub.add_parser("profiles", help="show a chapter's parameters and profiles")
    prof.add_argument("chapter")
    prof.add_argument("--book-dir", type=Path, default=runs.BOOK, help="folder holding the chapters (default: book/)")

    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            chapter = runs.resolve_chapter(args.chapter, args.book_dir)
            out = runs.run_chapter(chapter, args.profile, _overrides(args.param), runs_dir=args.runs_dir.absolute(),
                                   book_dir=args.book_dir)
            print(f"results: {out / 'results.json'}")
            _report_claims(out / "results.json")
        elif args.command == "prepare":
            names = [runs.resolve_chapter(c, args.book_dir) for c in args.chapters] or runs.chapters(args.book_dir)
            for name in names:
                print(runs.prepare(name, args.profile, args.out, book_dir=args.book_dir))
        elif args.command == "fetch":
            from infocam.data import load_mnist
            from infocam.vendor import fetch_mathjax

            print(load_mnist("embedded").source)
            print(f"MathJax: {fetch_mathjax()}")
        elif args.command == "features":
            _warm_features()
        elif args.command == "execute":
            from infocam.bookbuild import default_jobs, execute_book

            if args.jobs is not None and args.jobs < 1:
                return _error(ValueError(f"--jobs must be >= 1, got {args.jobs}"), 2)
            return execute_book(args.root, args.cache, jobs=args.jobs or default_jobs())
        elif args.command == "train":
            from infocam.recipe import train_command

            return train_command(args)
        elif args.command == "profiles":
            chapter = runs.resolve_chapter(args.chapter, args.book_dir)
            print(f"{chapter} parameters (defaults): {runs.parameters_cell(args.book_dir / (chapter + '.ipynb'))}")
            for profile in runs.PROFILES:
                print(f"  {profile}: {runs.load_profile(chapter, profile, args.book_dir)}")
            print("allowed values:")
            for name, schema in runs.constraints(chapter, args.book_dir).items():
                print(f"  {name}: {runs.allowed(schema)}")
    except (runs.ParameterError, DataError, DeviceError) as exc:
        return _error(exc, 2)
    except runs.ChapterError as exc:
        if not exc.own:  # a bug or a broken claim: the reader needs the traceback
            print(exc.traceback, file=sys.stderr)
        return _error(exc, 1)
    except runs.RunError as exc:
        return _error(exc, 1)
    except KeyboardInterrupt as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        print(f"infocam: interrupted{' (SIGTERM)' if isinstance(exc, runs.Interrupted) else ''}"
              f"{'; ' + notes if notes else ''}", file=sys.stderr)
        return 143 if isinstance(exc, runs.Interrupted) else 130
    except OSError as exc:  # the file system refused: full disk, permissions, a file in the way
        hint = "; free some space and try again" if exc.errno == errno.ENOSPC else ""
        return _error(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}{hint}", 1)
    return 0


def _report_claims(results_path: Path) -> None:
    """After a run in report mode: the chapter's claims that its numbers did not support, and the
    exercises whose asserted answer did not hold, one per line."""
    from infocam.claims import not_holding

    results = json.loads(results_path.read_text())
    failed = not_holding(results)
    if failed:
        print(f"claims that do not hold with your parameters ({len(failed)}; the executed notebook marks each):")
        for c in failed:
            print(f"  - {c['id']}: {c['statement']}")
    answers = results.get("exercises_not_holding", [])
    if answers:
        print(f"exercise answers that do not hold with your parameters ({len(answers)}; the executed notebook "
              "shows each failed solution):")
        for a in answers:
            print(f"  - {a['exercise']}: {a['error']}")


def _error(message, code: int) -> int:
    """Print one line to stderr and return the exit code."""
    print(f"infocam: error: {message}", file=sys.stderr)
    return code
