"""Running chapters: profiles, parameter validation, provenance and results.

A chapter is a notebook ``book/<chapter>.ipynb`` whose first code cell is tagged ``parameters``.
Its profiles live in ``book/params/<chapter>.yml`` as three mappings, ``smoke`` (seconds, used
by the tests), ``default`` (what the book renders; must equal the parameters cell) and ``paper``
(the paper's scale). Inside a chapter, :func:`record` stores metrics; :func:`run_chapter` (the
``infocam run`` command) executes a chapter with papermill and writes the executed notebook and
``results.json`` with provenance under ``runs/<chapter>/<timestamp>/``.
"""

from __future__ import annotations

import ast
import datetime as _dt
import difflib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from infocam.utils import atomic_write_text

PROFILES = ("smoke", "default", "paper")
RESULTS_ENV = "INFOCAM_RESULTS"
# Set by the book build (Makefile, book/_ext/course.py): record() also writes <dir>/<chapter>.json
METRICS_DIR_ENV, CHAPTER_ENV = "INFOCAM_METRICS_DIR", "INFOCAM_CHAPTER"
REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"


class ParameterError(ValueError):
    """A parameter name or value a chapter does not accept."""


# -- chapters and their parameters ----------------------------------------------------------


def chapters(book_dir: Path = BOOK) -> list[str]:
    """Names (file stems) of the executable chapters, in file order."""
    return sorted(p.stem for p in book_dir.glob("[0-9][0-9]_*.ipynb"))


def resolve_chapter(name: str, book_dir: Path = BOOK) -> str:
    """Accept ``01_theory``, ``theory``, ``01`` or a path to the notebook."""
    stem = Path(name).stem
    names = chapters(book_dir)
    matches = [c for c in names if c == stem or c.split("_", 1)[1] == stem or c.split("_", 1)[0] == stem]
    if len(matches) != 1:
        raise ParameterError(f"unknown chapter {name!r}; chapters are: {', '.join(names)}")
    return matches[0]


def parameters_cell(notebook_path: Path) -> dict:
    """Names and default values of a notebook's ``parameters`` cell (literals only)."""
    nb = json.loads(Path(notebook_path).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if not code or "parameters" not in code[0].get("metadata", {}).get("tags", []):
        raise ParameterError(f"{notebook_path}: the first code cell must be tagged 'parameters'")
    source = "".join(code[0]["source"])
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
        else:
            raise ParameterError(f"{notebook_path}: parameters cell may hold only `name = literal` lines")
    return values


def load_profile(chapter: str, profile: str, book_dir: Path = BOOK) -> dict:
    """The parameters a profile sets for a chapter (validated against the parameters cell)."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    path = book_dir / "params" / f"{chapter}.yml"
    if not path.exists():
        raise ParameterError(f"{path} is missing: every chapter needs smoke/default/paper profiles")
    profiles = yaml.safe_load(path.read_text()) or {}
    if profile not in profiles:
        raise ParameterError(f"{path} has no {profile!r} profile")
    params = dict(profiles[profile] or {})
    validate(chapter, params, book_dir)
    return params


def _type_name(value) -> str:
    return type(value).__name__


def _compatible(default, value) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if default is None:
        return True
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def validate(chapter: str, params: dict, book_dir: Path = BOOK) -> dict:
    """Refuse unknown names and wrong types before anything runs (papermill only warns)."""
    defaults = parameters_cell(book_dir / f"{chapter}.ipynb")
    for name, value in params.items():
        if name not in defaults:
            close = difflib.get_close_matches(name, defaults, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ParameterError(
                f"chapter {chapter} has no parameter {name!r}.{hint} "
                f"Its parameters are: {', '.join(defaults)}"
            )
        if not _compatible(defaults[name], value):
            raise ParameterError(
                f"parameter {name!r} of chapter {chapter} must be of type {_type_name(defaults[name])} "
                f"(default {defaults[name]!r}), got {value!r} ({_type_name(value)})"
            )
    return params


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as YAML (``3`` → int, ``0.1`` → float, ``[1, 2]`` → list)."""
    if "=" not in text:
        raise ParameterError(f"-p expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ParameterError(f"cannot parse value of {key!r}: {exc}") from None
    return key.strip(), value


# -- inside a chapter ----------------------------------------------------------------------------

_RECORDED: dict = {}


def record(**metrics) -> dict:
    """Store a chapter's metrics (JSON-serialisable) for ``results.json``.

    Outside ``infocam run`` the values are kept in memory only, so chapters call this freely.
    Call it with ``data_source=...`` to name the data a chapter used. In the book build they also
    go to ``$INFOCAM_METRICS_DIR/<chapter>.json``, which the summary page tabulates.
    """
    _RECORDED.update(json.loads(json.dumps(metrics, default=_jsonable)))
    path = os.environ.get(RESULTS_ENV)
    if path:
        atomic_write_text(path, json.dumps(_RECORDED, indent=2, sort_keys=True))
    if os.environ.get(METRICS_DIR_ENV) and os.environ.get(CHAPTER_ENV):
        atomic_write_text(Path(os.environ[METRICS_DIR_ENV]) / f"{os.environ[CHAPTER_ENV]}.json",
                          json.dumps(_RECORDED, indent=2, sort_keys=True))
    return dict(_RECORDED)


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


# -- provenance and runs ---------------------------------------------------------------------------


def provenance() -> dict:
    """Versions and git commit of this process (the device comes from what the chapter recorded)."""
    import torch

    import infocam

    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "infocam": infocam.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "cuda_available": torch.cuda.is_available(),
        "platform": platform.platform(),
    }


def prepare(chapter: str, profile: str, out_dir: Path, overrides: dict | None = None, book_dir: Path = BOOK) -> Path:
    """Write the chapter with a profile's parameters injected (not executed), for nbval."""
    import papermill as pm

    params = {**load_profile(chapter, profile, book_dir), **validate(chapter, overrides or {}, book_dir)}
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{chapter}.ipynb"
    pm.execute_notebook(str(book_dir / f"{chapter}.ipynb"), str(out), parameters=params,
                        prepare_only=True, progress_bar=False, log_output=False)
    return out


def run_chapter(chapter: str, profile: str = "default", overrides: dict | None = None,
                runs_dir: Path = REPO / "runs", book_dir: Path = BOOK) -> Path:
    """Execute a chapter with papermill; return the run folder holding results.json.

    Parameters are validated first. The run is written into a hidden temporary folder that is
    renamed into place only when the notebook has finished, so ``runs/`` never holds a
    half-written run; a failed run is kept as ``<timestamp>.failed`` for inspection.
    """
    import papermill as pm

    chapter = resolve_chapter(chapter, book_dir)
    params = {**load_profile(chapter, profile, book_dir), **validate(chapter, overrides or {}, book_dir)}
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    final = runs_dir / chapter / stamp
    tmp = runs_dir / chapter / f".{stamp}.tmp"
    tmp.mkdir(parents=True, exist_ok=False)
    metrics_path = tmp / "metrics.json"
    env_before = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(metrics_path)
    started = time.time()
    try:
        pm.execute_notebook(
            str(book_dir / f"{chapter}.ipynb"), str(tmp / f"{chapter}.ipynb"),
            parameters=params, cwd=str(book_dir), kernel_name="python3",
            progress_bar=sys.stderr.isatty(),
        )
    except BaseException:
        shutil.move(tmp, final.with_name(stamp + ".failed"))
        raise
    finally:
        if env_before is None:
            os.environ.pop(RESULTS_ENV, None)
        else:
            os.environ[RESULTS_ENV] = env_before
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metrics_path.unlink(missing_ok=True)
    full_params = {**parameters_cell(book_dir / f"{chapter}.ipynb"), **params}
    results = {
        "chapter": chapter,
        "profile": profile,
        "parameters": full_params,
        "overrides": overrides or {},
        "seed": full_params.get("seed"),
        "data_source": metrics.pop("data_source", None),
        # the device the chapter's work ran on, as it recorded it (record(device=...)); "cpu" if it
        # recorded none (chapters without a device parameter compute on the CPU only)
        "device": metrics.pop("device", "cpu"),
        "wall_time_s": round(time.time() - started, 2),
        "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        **provenance(),
        "metrics": metrics,
    }
    atomic_write_text(tmp / "results.json", json.dumps(results, indent=2, sort_keys=True))
    tmp.rename(final)
    return final
