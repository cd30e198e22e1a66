"""Running chapters: profiles, parameter validation, provenance and results.

A chapter is a notebook ``book/<chapter>.ipynb`` whose first code cell is tagged ``parameters``.
Its profiles live in ``book/params/<chapter>.yml`` as three mappings, ``smoke`` (seconds, used
by the tests), ``default`` (what the book renders; must equal the parameters cell) and ``paper``
(the paper's scale). Inside a chapter, :func:`record` stores metrics (and :func:`infocam.claims.claim`
its claims); :func:`run_chapter` (the ``infocam run`` command) executes a chapter with papermill and
writes the executed notebook and ``results.json`` with provenance under ``runs/<chapter>/<timestamp>/``.

Each profile file also holds a ``constraints`` mapping: for every parameter, a JSON Schema (with
three extra keywords, see :func:`check_values`) of the values it allows. ``infocam run`` and
``infocam prepare`` check the full parameter set against it before anything runs.
"""

from __future__ import annotations

import ast
import datetime as _dt
import errno
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from infocam import config
from infocam.utils import MALLOC_ENV, atomic_write_text, with_malloc_env

PROFILES = ("smoke", "default", "paper")
RESULTS_ENV = "INFOCAM_RESULTS"
# Set by the book build (Makefile, book/_ext/course.py): record() also writes <dir>/<chapter>.json
METRICS_DIR_ENV, CHAPTER_ENV = "INFOCAM_METRICS_DIR", "INFOCAM_CHAPTER"
# Set by run_chapter for the kernel: "strict" (a claim that does not hold raises) or "report"
# (it is recorded and shown); unset means strict. See infocam.claims.
CLAIMS_ENV = "INFOCAM_CLAIMS"
REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"


CONSTRAINTS = "constraints"
# errors of the package itself: a chapter that raises one is reported by its message alone
OWN_ERRORS = ("DataError", "ParameterError", "DeviceError", "RecipeError", "CheckpointError", "NotRecorded",
              "ClaimFailed")


class ParameterError(ValueError):
    """A parameter name or value a chapter does not accept."""


class RunError(RuntimeError):
    """A run that could not start or finish (runs folder, disk); the message says what to do."""


class ChapterError(RunError):
    """A chapter raised while executing; its executed notebook is kept in a ``.failed`` folder."""

    def __init__(self, chapter: str, ename: str, evalue: str, notebook: Path, traceback: str = ""):
        self.chapter, self.ename, self.evalue, self.notebook, self.traceback = chapter, ename, evalue, notebook, traceback
        super().__init__(f"chapter {chapter} stopped: {ename}: {evalue} (executed notebook kept at {notebook})")

    @property
    def own(self) -> bool:
        """Whether the error is one of the package's own (its message says all; no traceback needed)."""
        return self.ename in OWN_ERRORS or (self.ename == "OSError" and "[Errno 28]" in self.evalue)


class Interrupted(KeyboardInterrupt):
    """SIGTERM (what ``timeout`` and CI cancellation send), handled like Ctrl-C."""


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
    profiles = _params_file(chapter, book_dir)
    if profile not in profiles:
        raise ParameterError(f"{book_dir / 'params' / f'{chapter}.yml'} has no {profile!r} profile")
    params = dict(profiles[profile] or {})
    validate(chapter, params, book_dir)
    return params


def _params_file(chapter: str, book_dir: Path) -> dict:
    path = book_dir / "params" / f"{chapter}.yml"
    if not path.exists():
        raise ParameterError(f"{path} is missing: every chapter needs smoke/default/paper profiles")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path} is not valid YAML: {exc}") from None


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
            close = config.closest(name, defaults)
            hint = f" Did you mean {close!r}?" if close else ""
            raise ParameterError(
                f"chapter {chapter} has no parameter {name!r}.{hint} "
                f"Its parameters are: {', '.join(defaults)}"
            )
        if not _compatible(defaults[name], value):
            raise ParameterError(
                f"parameter {name!r} of chapter {chapter} must be of type {_type_name(defaults[name])} "
                f"(default {defaults[name]!r}), got {value!r} ({_type_name(value)})"
            )
        if not config.finite(value):
            raise ParameterError(f"parameter {name}={value!r} of chapter {chapter}: numbers must be finite (no nan or inf)")
    return params


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as YAML (``3`` → int, ``0.1`` → float, ``[1, 2]`` → list)."""
    return config.parse_override(text, ParameterError, "-p")


# -- allowed values ----------------------------------------------------------------------------------


# name lists that constraints refer to with ``registry: <name>`` (:data:`infocam.config.REGISTRIES`)
REGISTRIES = config.REGISTRIES


def registry(name: str) -> tuple:
    """The names in registry ``name`` (imported only when a constraint asks for it)."""
    return config.registry(name, ParameterError)


def constraints(chapter: str, book_dir: Path = BOOK) -> dict:
    """The ``constraints`` mapping of a chapter's profile file (parameter → JSON Schema)."""
    found = _params_file(chapter, book_dir).get(CONSTRAINTS) or {}
    if not isinstance(found, dict) or not all(isinstance(v, dict) for v in found.values()):
        raise ParameterError(f"{chapter}.yml: constraints must map each parameter to a JSON Schema mapping")
    return found


_validator = config.validator  # a JSON-Schema validator with the book's keywords (infocam.config)
allowed = config.allowed  # a short human reading of a constraint, e.g. ``integer ≥ 1``


def check_values(chapter: str, params: dict, book_dir: Path = BOOK) -> dict:
    """Check every value against the chapter's constraints; one line naming parameter, value, rule.

    ``params`` is the full set (parameters cell, profile, overrides). A constraint is a JSON
    Schema; three keywords are the book's own: ``registry: losses`` (value from a name list in
    the package, see :data:`REGISTRIES`), ``path: dir`` (an existing folder, unless ``""`` = not
    set or ``"none"`` = switched off) and ``device: true`` (a device name).
    """
    for name, schema in constraints(chapter, book_dir).items():
        if name not in params:
            continue
        wrong = config.problem(name, params[name], schema)
        if wrong is not None:
            raise ParameterError(f"parameter {name}={params[name]!r} of chapter {chapter} is not allowed{wrong}")
    return params


def resolve_parameters(chapter: str, profile: str, overrides: dict | None = None, book_dir: Path = BOOK) -> dict:
    """The parameters to inject (profile, then overrides), checked by name, type and value.

    Folder parameters (``path`` constraints) given relative are made absolute against the current
    folder, since the chapter executes inside ``book/``.
    """
    params = {**load_profile(chapter, profile, book_dir), **validate(chapter, overrides or {}, book_dir)}
    for name, schema in constraints(chapter, book_dir).items():
        value = params.get(name)
        if "path" in schema and isinstance(value, str) and value not in ("", "none"):
            params[name] = str(Path(value).expanduser().absolute())
    check_values(chapter, {**parameters_cell(book_dir / f"{chapter}.ipynb"), **params}, book_dir)
    return params


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


def recorded() -> dict:
    """What this process has recorded so far (a copy)."""
    return json.loads(json.dumps(_RECORDED))


def section(name: str, ran: bool, why: str = "") -> dict:
    """Record whether a section of a chapter ran, and if not why (``results.json`` → ``sections``).

    Call it once per optional section, e.g. ``runs.section("cub", ran=cub is not None, why="no CUB
    folder")``, so a skipped section is visible in the results rather than silently missing;
    ``why`` is kept only for a section that did not run.
    """
    if not ran and not why:
        raise ValueError(f"section {name!r} did not run: say why (why='...')")
    sections = {**_RECORDED.get("sections", {}), name: {"ran": bool(ran), "why": "" if ran else why}}
    return record(sections=sections)


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

    params = resolve_parameters(chapter, profile, overrides, book_dir)
    _make_folder(out_dir, "output folder (--out)")
    out = out_dir / f"{chapter}.ipynb"
    pm.execute_notebook(str(book_dir / f"{chapter}.ipynb"), str(out), parameters=params,
                        prepare_only=True, progress_bar=False, log_output=False)
    return out


# -- run folders: unique, atomic, swept -------------------------------------------------------------

OWNER = "owner.json"  # in a temporary run folder: who is writing it
FAILED = ".failed"
ERROR_FILE = "error.txt"  # in a failed run folder: why it failed
KERNEL_LOG = "kernel.log"  # in a run folder: the kernel process's own log (not cell output)


def _make_folder(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunError(f"{what} {str(path)!r} is not a folder (a file is in the way); choose a folder") from None
    except OSError as exc:
        raise RunError(f"cannot create the {what} {str(path)!r}: {exc.strerror}") from None


def _start_time(pid: int) -> str | None:
    """Start time of a process (Linux /proc; None elsewhere), to tell a reused pid from its owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid())}


def _alive(owner: dict) -> bool:
    """Whether the process that wrote ``owner`` still runs (unknown hosts count as alive)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return owner.get("start") is None or _start_time(int(owner["pid"])) in (None, owner["start"])


def _place(src: Path, parent: Path, name: str, suffix: str = "") -> Path:
    """Rename ``src`` to ``parent/name+suffix``, or ``name-2+suffix``, ... if that is taken."""
    n = 1
    while True:
        target = parent / f"{name}{'' if n == 1 else f'-{n}'}{suffix}"
        try:
            if not target.exists():
                os.rename(src, target)
                return target
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        n += 1


def _fail(tmp: Path, name: str, why: str) -> Path:
    """Mark a temporary run folder failed: write why, rename it to ``<name>.failed``."""
    try:
        (tmp / ERROR_FILE).write_text(why.rstrip() + "\n")
    except OSError:
        pass  # a full disk must not hide the failure itself
    (tmp / OWNER).unlink(missing_ok=True)
    return _place(tmp, tmp.parent, name, FAILED)


def sweep_stale(chapter_dir: Path) -> list[Path]:
    """Mark temporary run folders whose process is gone (SIGKILL, power loss) as failed.

    Only folders whose recorded owner is dead on this machine are touched; a folder without an
    owner record (left by an older version) counts as dead. Returns the new ``.failed`` folders.
    """
    swept = []
    for draft in chapter_dir.glob(".*.new"):  # a run that died while creating its folder
        try:
            if not _alive(json.loads((draft / OWNER).read_text())):
                shutil.rmtree(draft, ignore_errors=True)
        except (OSError, ValueError):
            pass
    for tmp in sorted(chapter_dir.glob(".*.tmp")):
        try:
            owner = json.loads((tmp / OWNER).read_text())
        except FileNotFoundError:
            owner = None
        except (OSError, ValueError):
            continue  # being written right now, or unreadable: leave it alone
        if owner is not None and _alive(owner):
            continue
        who = f"pid {owner['pid']}" if owner else "unknown"
        swept.append(_fail(tmp, tmp.name[1:-len(".tmp")], f"interrupted: its process ({who}) ended before the run finished"))
    return swept


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def _reserve(chapter_dir: Path) -> tuple[str, Path]:
    """A run name unique in ``chapter_dir`` (time stamp, ``-2``, ``-3`` ... on a clash) and its temp folder.

    The temporary folder appears with its owner record already inside (built under a private
    name, then renamed), so a concurrent run never mistakes it for the leftover of a dead one.
    """
    stamp = _stamp()
    draft = Path(tempfile.mkdtemp(prefix=f".{stamp}.", suffix=".new", dir=chapter_dir))
    umask = os.umask(0)
    os.umask(umask)
    draft.chmod(0o777 & ~umask)  # mkdtemp makes it private; a run folder is as readable as any other
    try:
        atomic_write_text(draft / OWNER, json.dumps(_owner()))
        n = 1
        while True:
            name = stamp if n == 1 else f"{stamp}-{n}"
            n += 1
            if (chapter_dir / name).exists() or (chapter_dir / f"{name}{FAILED}").exists():
                continue
            tmp = chapter_dir / f".{name}.tmp"
            try:
                os.rename(draft, tmp)  # fails if another run holds this name (its folder is never empty)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise
            return name, tmp
    except BaseException:
        if draft.exists():
            shutil.rmtree(draft, ignore_errors=True)
        raise


class _sigterm_as_interrupt:
    """Within the block, SIGTERM raises :class:`Interrupted` (main thread only), like Ctrl-C."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise Interrupted("SIGTERM")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


def run_chapter(chapter: str, profile: str = "default", overrides: dict | None = None,
                runs_dir: Path = REPO / "runs", book_dir: Path = BOOK) -> Path:
    """Execute a chapter with papermill; return the run folder holding results.json.

    Parameters are checked first (names, types, values). The run is written into a hidden
    temporary folder ``.<name>.tmp`` (with its owner's pid) that is renamed into place only when
    the notebook has finished, so ``runs/`` never holds a half-written run. A failed or
    interrupted run (Ctrl-C, SIGTERM) is kept as ``<name>.failed`` with ``error.txt``; temporary
    folders of runs whose process died (SIGKILL) are marked failed by the next run.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    chapter = resolve_chapter(chapter, book_dir)
    params = resolve_parameters(chapter, profile, overrides, book_dir)
    chapter_dir = Path(runs_dir) / chapter
    _make_folder(chapter_dir, "runs folder (--runs-dir)")
    for old in sweep_stale(chapter_dir):
        print(f"infocam: marked an interrupted earlier run as failed: {old}", file=sys.stderr)
    try:
        name, tmp = _reserve(chapter_dir)
    except OSError as exc:
        hint = "; free some space and try again" if exc.errno == errno.ENOSPC else ""
        raise RunError(f"cannot write in {chapter_dir}: {exc.strerror}{hint}") from None
    metrics_path = tmp / "metrics.json"
    notebook = tmp / f"{chapter}.ipynb"
    env_before = {key: os.environ.get(key) for key in (RESULTS_ENV, CLAIMS_ENV, *MALLOC_ENV)}
    os.environ.update(with_malloc_env(os.environ))  # the kernel's (utils.MALLOC_ENV)
    os.environ[RESULTS_ENV] = str(metrics_path)
    mode = os.environ[CLAIMS_ENV] = claims_mode(profile, overrides)
    source = book_dir / f"{chapter}.ipynb"
    started = time.time()
    unheld_answers = []
    try:
        with _sigterm_as_interrupt(), open(tmp / KERNEL_LOG, "ab") as kernel_log:
            pm.execute_notebook(
                _tolerating_solutions(source) if mode == "report" else str(source), str(notebook),
                parameters=params, cwd=str(book_dir), kernel_name="python3",
                progress_bar=sys.stderr.isatty(), kernel_manager_class=_logged_kernel(kernel_log),
            )
    except PapermillExecutionError as exc:
        unheld_answers = _failed_solutions(notebook) if mode == "report" else []
        if not unheld_answers:
            failed = _fail(tmp, name, f"{exc.ename}: {exc.evalue}\n\n{_plain(exc.traceback)}")
            raise ChapterError(chapter, exc.ename, exc.evalue, failed / notebook.name, _plain(exc.traceback)) from None
    except BaseException as exc:
        why = "interrupted by SIGTERM" if isinstance(exc, Interrupted) else (
            "interrupted by Ctrl-C" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}")
        failed = _fail(tmp, name, why)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise RunError(f"no space left on the device while running {chapter} "
                           f"(partial run kept in {failed}); free some space and run again") from None
        exc.add_note(f"partial run kept in {failed}")
        raise
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        with _sigterm_as_interrupt():
            return _finish(chapter, profile, params, overrides, book_dir, tmp, name, started, unheld_answers)
    except OSError as exc:
        failed = _fail(tmp, name, f"could not write results.json: {exc}")
        hint = "free some space and run again" if exc.errno == errno.ENOSPC else "check the runs folder"
        raise RunError(f"could not write the results of {chapter} ({exc.strerror}); executed notebook "
                       f"kept in {failed}; {hint}") from None
    except KeyboardInterrupt as exc:
        if tmp.exists():
            exc.add_note(f"partial run kept in {_fail(tmp, name, 'interrupted while writing results.json')}")
        raise


def claims_mode(profile: str, overrides: dict | None) -> str:
    """How a run treats a claim that does not hold (:mod:`infocam.claims`): ``strict`` for the
    book's own parameters (``smoke`` / ``default``, no override), ``report`` for a user's."""
    return "strict" if profile in ("smoke", "default") and not overrides else "report"


# In report mode the exercises' solution cells may raise: their asserted answers are the book's, and a
# user's parameters can move them (they stay asserts: the course material grades with them).
TOLERATED = "raises-exception"  # nbclient's tag: an error in the cell does not stop the notebook


def _tolerating_solutions(path: Path):
    """The chapter with every code cell after its ``## Exercises`` heading tagged :data:`TOLERATED`."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    exercises = False
    for cell in nb.cells:
        exercises = exercises or (cell.cell_type == "markdown" and cell.source.startswith("## Exercises"))
        if exercises and cell.cell_type == "code" and TOLERATED not in cell.metadata.setdefault("tags", []):
            cell.metadata["tags"].append(TOLERATED)
    return nb


def _failed_solutions(notebook: Path) -> list[dict]:
    """The exercises whose solution raised in an executed notebook, ``[{exercise, error}]``; empty when
    an error lies in any cell that was not tolerated (then the run failed). Drops papermill's error
    banner from the notebook, since the chapter itself finished."""
    import re

    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    failed, label = [], None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (m := re.search(r"\{solution-start\}\s+(\S+)", cell.source)):
            label = m.group(1)
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors and TOLERATED not in cell.metadata.get("tags", []):
            return []
        failed += [{"exercise": label, "error": f"{e.ename}: {e.evalue}".rstrip(": ")} for e in errors]
    nb.cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    atomic_write_text(notebook, nbformat.writes(nb))
    return failed


def _logged_kernel(log):
    """A kernel manager whose kernel writes its own log (stderr, stdout) to ``log``, not the terminal.

    The kernel's log is noise to a reader ("running over TCP without encryption", "KeyboardInterrupt
    caught in kernel" at shutdown); cell output still reaches the notebook, and the log is kept in
    the run folder (:data:`KERNEL_LOG`) for when something went wrong inside the kernel itself.
    """
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            return await super().start_kernel(**kw)

    return LoggedKernelManager


def _plain(traceback: list[str]) -> str:
    """A kernel traceback without terminal colour codes."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(traceback))


def _finish(chapter, profile, params, overrides, book_dir, tmp: Path, name: str, started: float,
            unheld_answers: list[dict] = ()) -> Path:
    metrics_path = tmp / "metrics.json"
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
        # which optional sections ran, and why the others did not (runs.section)
        "sections": metrics.pop("sections", {}),
        # every claim the chapter made, {id, statement, holds, numbers} (infocam.claims.claim)
        "claims": metrics.pop("claims", []),
        "claims_mode": claims_mode(profile, overrides),
        # exercises whose asserted answer did not hold with these parameters (report mode only)
        "exercises_not_holding": list(unheld_answers),
        "wall_time_s": round(time.time() - started, 2),
        "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        **provenance(),
        "metrics": metrics,
    }
    atomic_write_text(tmp / "results.json", json.dumps(results, indent=2, sort_keys=True))
    (tmp / OWNER).unlink(missing_ok=True)
    return _place(tmp, tmp.parent, name)
