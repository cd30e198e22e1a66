"""One way to check settings: chapter parameters and training recipes pass the same JSON-Schema machinery.

A setting's allowed values are a JSON Schema (Draft 2020-12) with three keywords of the book's
own: ``registry: losses`` (a name from a list kept in the package, see :data:`REGISTRIES`),
``path: dir`` (an existing folder, unless ``""`` = not set or ``"none"`` = switched off) and
``device: true`` (a device this machine has). :func:`problem` says what is wrong with one value (or nothing),
:func:`allowed` reads a schema back in words, :func:`did_you_mean` suggests a known name for an
unknown one, :func:`parse_override` reads ``key=value`` from the command line. Used by
:mod:`infocam.runs` (``infocam run -p``) and :mod:`infocam.recipe` (``infocam train -s``); each
raises its own error class with the one line these functions build.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import yaml

# name lists that schemas refer to with ``registry: <name>``, kept in their own modules
REGISTRIES = {
    "losses": ("infocam.losses", "LOSSES"),
    "backbones": ("infocam.models.backbones", "BACKBONES"),
    "mnist_sources": ("infocam.data.mnist", "SOURCES"),
    "precisions": ("infocam.device", "PRECISIONS"),
    "networks": ("infocam.recipe.schema", "NETWORKS"),
    "datasets": ("infocam.recipe.factories", "DATASETS"),
    "lite0_stages": ("infocam.models.backbones", "LITE0_STAGES"),
}


def registry(name: str, error: type[Exception] = ValueError) -> tuple:
    """The names in registry ``name`` (imported only when a schema asks for it)."""
    import importlib

    if name not in REGISTRIES:
        raise error(f"unknown registry {name!r} in a constraint; registries: {', '.join(REGISTRIES)}")
    module, attr = REGISTRIES[name]
    return tuple(getattr(importlib.import_module(module), attr))


def validator(schema: dict):
    """A JSON-Schema validator with the book's keywords ``registry``, ``path`` and ``device``."""
    import jsonschema
    from jsonschema.exceptions import ValidationError

    def in_registry(validator, name, value, schema):
        names = registry(name)
        if value not in names:
            close = difflib.get_close_matches(str(value), [str(n) for n in names], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            yield ValidationError(f"{value!r} is not one of {', '.join(map(str, names))}{hint}")

    def existing_path(validator, kind, value, schema):
        if isinstance(value, str) and value not in ("", "none") and not Path(value).expanduser().is_dir():
            what = "is a file, not a folder" if Path(value).expanduser().exists() else "does not exist"
            yield ValidationError(f"folder {value!r} {what}")

    def device_name(validator, on, value, schema):
        from infocam.device import DeviceError, resolve_device

        if on and isinstance(value, str) and value != "auto":
            try:
                resolve_device(value)  # a device this machine has: refused here, before any kernel starts
            except DeviceError as exc:
                yield ValidationError(str(exc))

    cls = jsonschema.validators.extend(
        jsonschema.Draft202012Validator, {"registry": in_registry, "path": existing_path, "device": device_name}
    )
    return cls(schema)


def allowed(schema: dict) -> str:
    """A short human reading of a schema, e.g. ``integer ≥ 1`` (or its ``description``)."""
    if "description" in schema:
        return schema["description"]
    if "registry" in schema:
        return "one of " + ", ".join(map(str, registry(schema["registry"])))
    if "enum" in schema:
        return "one of " + ", ".join("null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                                     for v in schema["enum"])
    if "path" in schema:
        return "'' (not set) or an existing folder"
    if schema.get("device"):
        return "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    kind = schema.get("type", "value")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array":
        text = "list"
        if "items" in schema:
            item = allowed(schema["items"])
            text += f" of ({item})" if item.startswith("one of") else " of " + item.replace("integer", "integers").replace("number", "numbers")
        if schema.get("minItems") and schema.get("minItems") == schema.get("maxItems"):
            text += f", exactly {schema['minItems']} items"
        elif schema.get("minItems"):
            text += f", at least {schema['minItems']} item{'s' if schema['minItems'] > 1 else ''}"
        if schema.get("uniqueItems"):
            text += ", no repeats"
        if "contains" in schema:
            text += f", including {schema['contains'].get('const', '')}"
        for part in schema.get("allOf", []):
            if "contains" in part:
                text += f", including {part['contains'].get('const', '')}"
        return text
    bounds = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in schema:
            bounds.append(f"{sign} {schema[key]}")
    if "multipleOf" in schema:
        bounds.append(f"a multiple of {schema['multipleOf']}")
    return " ".join([kind, ", ".join(bounds)]).strip()


def finite(value) -> bool:
    """Whether every number in ``value`` (nested lists and mappings too) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(finite(v) for v in value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    return True


def problem(name: str, value, schema: dict) -> str | None:
    """What is wrong with ``value`` under ``schema``, as ``" (detail); allowed: ..."``; None if it is allowed.

    NaN and infinity are refused for every setting (JSON Schema has no word for them).
    """
    from jsonschema.exceptions import best_match

    if not finite(value):
        return f" (numbers must be finite: no nan or inf); allowed: {allowed(schema)}"
    error = best_match(validator(schema).iter_errors(value))
    if error is None:
        return None
    where = "".join(f"[{i}]" for i in error.absolute_path)
    message = error.message
    if error.validator == "contains":
        message = f"it lacks {error.validator_value.get('const', 'a required item')!r}"
    elif error.validator in ("not", "anyOf", "oneOf", "if", "then"):
        message = ""  # jsonschema's wording helps nobody here; the allowed text says it all
    elif error.validator == "enum" and isinstance(error.instance, str):
        close = difflib.get_close_matches(error.instance, [str(v) for v in error.validator_value], n=1, cutoff=0.5)
        message = f"did you mean {close[0]!r}?" if close else f"{error.instance!r} is not one of them"
    detail = f" ({name}{where}: {message})" if where and message else f" ({message})" if message else ""
    return f"{detail}; allowed: {allowed(schema)}"


def closest(name: str, known, aliases: dict | None = None) -> str | None:
    """The known name meant by an unknown ``name``: a common alias, else the closest spelling, else None."""
    known = [str(k) for k in known]
    if aliases and aliases.get(name) in known:
        return aliases[name]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return close[0] if close else None


def did_you_mean(name: str, known, aliases: dict | None = None) -> str:
    """``"; did you mean 'lr'?"`` for an unknown ``name`` (see :func:`closest`), else the known names."""
    near = closest(name, known, aliases)
    return f"; did you mean {near!r}?" if near else f"; known: {', '.join(map(str, known))}"


def parse_override(text: str, error: type[Exception] = ValueError, flag: str = "-p") -> tuple[str, object]:
    """``key=value`` with the value read as YAML (``3`` → int, ``0.1`` → float, ``[1, 2]`` → list, ``.nan`` → nan)."""
    if "=" not in text:
        raise error(f"{flag} expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise error(f"{flag} expects key=value, got {text!r} (no key)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise error(f"cannot parse value of {key.strip()!r}: {exc}") from None
    return key.strip(), value
