"""Command line: ``infocam run``, ``infocam prepare``, ``infocam fetch``, ``infocam train``, ``infocam profiles``."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path

from infocam import runs
from infocam.device import DeviceError
from infocam.paths import DataError


def _overrides(items: list[str]) -> dict:
    return dict(runs.parse_override(item) for item in items)


def _warm_features() -> None:
    """``infocam features``: one pass per dataset fills the caches the chapters read (sizes in infocam.features)."""
    from infocam import features as F
    from infocam.data.cub import find_cub, load_cub
    from infocam.data.tiny_imagenet import find_tiny_imagenet, load_tiny_imagenet

    jobs = []
    if (root := find_cub()) is not None:
        cub = load_cub(root)
        jobs.append((cub.source, cub.paths, F.CUB_IMAGE_SIZE, F.CUB_CACHE_KEY, ("spatial", F.CHAPTER5_CUT)))
    if (root := find_tiny_imagenet()) is not None:
        tiny = load_tiny_imagenet(root, "val")
        jobs.append((tiny.source, tiny.paths, F.TINY_IMAGE_SIZE, F.TINY_CACHE_KEY, ("spatial",)))
    if not jobs:
        print("no CUB-200-2011 or Tiny-ImageNet folder under the data root: nothing to extract")
    for source, paths, size, key, kinds in jobs:
        started = time.time()
        files = F.cache_features(F.BACKBONE, paths, kinds=kinds, size=size, cache_key=key)
        seconds = time.time() - started
        print(f"{source}\n  {F.BACKBONE} {size} px on {F.resolve_runtime()}, {seconds:.0f} s "
              f"({len(paths) / seconds:.0f} images/s, 0 s when cached)")
        for kind, path in files.items():
            print(f"  {kind}: {path} ({path.stat().st_size / 2**20:.0f} MiB)")


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


def _error(message, code: int) -> int:
    """Print one line to stderr and return the exit code."""
    print(f"infocam: error: {message}", file=sys.stderr)
    return code
