"""Claims: each sentence of a chapter that states a measured fact is one recorded, checked call.

A chapter states a claim in its prose and, in the cell that measures it, calls
``claim("pc-unbiased", "PC-softmax is unbiased under imbalance", bias <= tol, bias=bias, tol=tol)``.
The call records ``{id, statement, holds, numbers}`` beside the chapter's metrics (``results.json``
of ``infocam run``, ``$INFOCAM_METRICS_DIR/<chapter>.json`` in the book build; see
:func:`infocam.runs.record`) and returns ``holds``. What a claim that does not hold does depends
on the mode, ``$INFOCAM_CLAIMS`` (:data:`infocam.runs.CLAIMS_ENV`):

* ``strict`` (the default: the book build, CI, nbval, and ``infocam run`` with the ``smoke`` or
  ``default`` profile and no ``-p`` override) raises :class:`ClaimFailed`, so the book can never
  print a false sentence. The book build (``$INFOCAM_METRICS_DIR`` set) is strict whatever
  ``$INFOCAM_CLAIMS`` says.
* ``report`` (``infocam run`` with overrides or the ``paper`` profile) lets the chapter go on: it
  shows a warning box in the executed notebook where the claim is made, with the numbers, and
  ``infocam run`` lists the claims that did not hold at the end.
"""

from __future__ import annotations

import html
import json
import os
import sys

import numpy as np

from infocam import runs

STRICT, REPORT = "strict", "report"


class ClaimFailed(AssertionError):
    """A chapter's claim that the measured numbers contradict (strict mode)."""

    def __init__(self, claim_id: str, statement: str, numbers: dict):
        self.claim_id, self.statement, self.numbers = claim_id, statement, numbers
        super().__init__(f"claim {claim_id!r} does not hold: {statement} ({_numbers_text(numbers)})")


def mode() -> str:
    """``strict`` or ``report``: how a claim that does not hold is handled in this process."""
    if os.environ.get(runs.METRICS_DIR_ENV):
        return STRICT  # the book build: a false sentence must never be printed
    value = os.environ.get(runs.CLAIMS_ENV, "") or STRICT
    if value not in (STRICT, REPORT):
        raise ValueError(f"${runs.CLAIMS_ENV} must be {STRICT!r} or {REPORT!r}, got {value!r}")
    return value


def claim(claim_id: str, statement: str, holds: bool, **numbers) -> bool:
    """Record a chapter's claim and whether the measured ``numbers`` support it; return ``holds``.

    ``claim_id`` is a short stable name (unique within the chapter; recording it again replaces
    the earlier entry), ``statement`` the sentence of the prose it checks, ``numbers`` the
    measured values (JSON-able: floats, ints, strings, lists) that decide it. Raises
    :class:`ClaimFailed` in strict mode when ``holds`` is false (see the module docstring).
    """
    if not isinstance(claim_id, str) or not claim_id.strip():
        raise ValueError(f"claim id must be a non-empty string, got {claim_id!r}")
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError(f"claim {claim_id!r}: the statement must be the sentence it checks, got {statement!r}")
    if not isinstance(holds, (bool, np.bool_)):  # numpy's bool comes from comparing numpy numbers
        raise TypeError(f"claim {claim_id!r}: holds must be a bool (a comparison), got {type(holds).__name__}")
    holds = bool(holds)
    numbers = json.loads(json.dumps(numbers, default=runs._jsonable))
    strict = mode() == STRICT
    entry = {"id": claim_id, "statement": statement, "holds": holds, "numbers": numbers}
    earlier = [c for c in runs.recorded().get("claims", []) if c["id"] != claim_id]
    runs.record(claims=[*earlier, entry])
    if not holds:
        if strict:
            raise ClaimFailed(claim_id, statement, numbers)
        _show_contradiction(entry)
    return holds


def not_holding(results: dict) -> list[dict]:
    """The recorded claims of a run's ``results.json`` (or a metrics file) that did not hold."""
    return [c for c in results.get("claims", []) if not c.get("holds")]


def _numbers_text(numbers: dict) -> str:
    return ", ".join(f"{k} = {_short(v)}" for k, v in numbers.items()) or "no numbers recorded"


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 8:
        return "[" + ", ".join(_short(v) for v in value[:8]) + ", …]"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def _show_contradiction(entry: dict) -> None:
    """A warning box in the executed notebook, right where the claim is made (report mode)."""
    title = f"Claim {entry['id']!r} does not hold with these parameters"
    body = "The measured numbers contradict the sentence above:"
    numbers = _numbers_text(entry["numbers"])
    plain = f"⚠ {title}. {body}\n  “{entry['statement']}”\n  measured: {numbers}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with the kernel
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(plain, file=sys.stderr)
        return
    box = (
        '<div class="admonition warning" style="border-left: 4px solid #d9534f; background: #fdf3f2; '
        'padding: 0.4em 1em; margin: 0.5em 0">'
        f'<p class="admonition-title" style="font-weight: bold; margin: 0.2em 0">⚠ {html.escape(title)}</p>'
        f"<p style=\"margin: 0.2em 0\">{html.escape(body)}<br><em>“{html.escape(entry['statement'])}”</em></p>"
        f'<p style="margin: 0.2em 0">measured: <code>{html.escape(numbers)}</code></p></div>'
    )
    display({"text/plain": plain, "text/html": box}, raw=True)
