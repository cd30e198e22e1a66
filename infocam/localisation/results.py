"""Results keyed by method id: mean ± sd over seeds, paired infoCAM − CAM differences, the verdict
against the network-free baseline, what chapters record, and the table of ``infocam train`` runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from infocam import paper
from infocam.localisation.score import METRICS, ORIGINAL_METRICS


def stack(tables: dict) -> pd.DataFrame:
    """Per-seed (or per-network) :func:`~infocam.localisation.score.score` tables as one long table
    with the keys as a column: ``{0: table, 1: table}`` → column ``seed``; tuple keys name
    ``(network, seed)``."""
    frames = []
    for key, t in tables.items():
        t = t.reset_index()
        if isinstance(key, tuple):
            t.insert(0, "seed", key[-1])
            t.insert(0, "network", key[0])
        else:
            t.insert(0, "seed", key)
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def summarise(long: pd.DataFrame, by=("id",)) -> pd.DataFrame:
    """Mean and sd over seeds of every numeric column, one row per method (order kept); sd 0 for one seed."""
    by = list(by)
    numeric = [c for c in long.columns if c not in {*by, "seed", "network", "method", "role"}
               and pd.api.types.is_numeric_dtype(long[c])]
    g = long.groupby(by, sort=False)
    mean, sd = g[numeric].mean(), g[numeric].std().fillna(0.0)
    out = pd.concat({"mean": mean, "sd": sd}, axis=1)
    first = g[["method", "role"]].first()
    out.insert(0, ("role", ""), first["role"])
    out.insert(0, ("method", ""), first["method"])
    return out


def display_table(long: pd.DataFrame, columns=None, by=("id",), digits: int = 1) -> pd.DataFrame:
    """A "mean ± sd" (percent) table for a page: one row per method (per network when ``by`` names
    ``"network"``: "label — network"), the given metric columns and the mean τ."""
    columns = columns or {"top1_accuracy": "top-1 accuracy (%)", "gt_known_loc": "GT-known Loc (%)",
                          "top1_loc": "Top-1 Loc (%)", "maxboxacc_v2": "MaxBoxAccV2 (%)"}
    s = summarise(long, by)
    labels = list(s[("method", "")])
    if "network" in by:
        labels = [f"{label} — {key[list(by).index('network')]}" for label, key in zip(labels, s.index)]
    table = pd.DataFrame({label: [f"{100 * m:.{digits}f} ± {100 * v:.{digits}f}" for m, v in
                                  zip(s[("mean", c)], s[("sd", c)])] for c, label in columns.items() if ("mean", c) in s},
                         index=pd.Index(labels, name="method"))
    if ("mean", "tau") in s:
        table["τ (selection half)"] = [f"{t:.2f}" for t in s[("mean", "tau")]]
    return table


def best_infocam(long: pd.DataFrame, metric: str) -> str:
    """Id of the centred infoCAM setting with the highest mean ``metric`` (the faithful window excluded)."""
    m = long[(long["role"] == "infocam") & ~long["id"].str.endswith("-faithful")].groupby("id", sort=False)[metric].mean()
    if m.empty:
        raise KeyError("no infoCAM rows scored")
    return str(m.idxmax())


def paired(long: pd.DataFrame, a: str, b: str, metric: str) -> pd.Series:
    """Per-seed difference ``a − b`` of ``metric`` (same network, same images): paired over seeds."""
    wide = long.pivot_table(index="seed", columns="id", values=metric)
    return wide[a] - wide[b]


def comparison(long: pd.DataFrame, metric: str = "maxboxacc_v2") -> dict:
    """infoCAM (best setting) vs CAM vs the centre prior on ``metric``: means, sds, the paired
    per-seed gain, and which maps beat the prior in every seed. Fractions, not percent."""
    best = best_infocam(long, metric)
    means = long.groupby("id", sort=False)[metric].mean()
    sds = long.groupby("id", sort=False)[metric].std().fillna(0.0)
    gain = paired(long, best, "cam", metric)
    out = {"metric": metric, "best_infocam": best, "cam": float(means["cam"]), "infocam": float(means[best]),
           "cam_sd": float(sds["cam"]), "infocam_sd": float(sds[best]), "gain": float(gain.mean()),
           "gain_sd": float(gain.std()) if len(gain) > 1 else 0.0, "gain_min": float(gain.min()),
           "gain_max": float(gain.max()), "seeds": int(len(gain))}
    if "centre" in means:
        beats = paired(long, best, "centre", metric), paired(long, "cam", "centre", metric)
        out.update(centre=float(means["centre"]), centre_sd=float(sds["centre"]),
                   infocam_beats_centre=bool((beats[0] > 0).all()), cam_beats_centre=bool((beats[1] > 0).all()))
    return out


def verdict(c: dict) -> str:
    """The comparison in words, infoCAM vs CAM first, then both against the network-free prior.

    A lead counts only where every seed shows it (paired); with one seed the sign decides."""
    if c["gain_min"] > 0:
        head = "infoCAM > CAM"
    elif c["gain_max"] < 0:
        head = "infoCAM < CAM"
    else:
        head = "infoCAM ≈ CAM (the sign changes across seeds)"
    if "centre" not in c:
        return head
    beat = [n for n, k in (("infoCAM", "infocam_beats_centre"), ("CAM", "cam_beats_centre")) if c[k]]
    if not beat:
        tail = "neither beats the network-free centre prior"
    elif len(beat) == 2:
        tail = "both beat the network-free centre prior"
    else:
        tail = f"only {beat[0]} beats the network-free centre prior"
    return f"{head}; {tail}"


def record(long: pd.DataFrame) -> dict:
    """What a chapter records for one dataset: per method id its label, role, mean and sd of every
    metric (fractions), and the seeds. The summary reads these keys."""
    s = summarise(long)
    cols = [c for c in (*METRICS, *ORIGINAL_METRICS, "tau", "top1_accuracy", "images") if ("mean", c) in s]
    return {"seeds": sorted(int(x) for x in long["seed"].unique()),
            "methods": {mid: {"label": s.loc[mid, ("method", "")], "role": s.loc[mid, ("role", "")],
                              **{c: float(s.loc[mid, ("mean", c)]) for c in cols},
                              **{f"{c}_sd": float(s.loc[mid, ("sd", c)]) for c in cols}} for mid in s.index}}


def train_results(runs_folder, recipe_names) -> pd.DataFrame:
    """One row per paper recipe, filled from the ``results.json`` files ``infocam train`` wrote
    under ``runs_folder`` (a relative folder not found here is taken from the repository root).

    The dataset is the recipe's ``dataset.name`` (never the recipe's name); localisation scores are
    those results.json holds under ``localisation`` (keyed by method id: CAM, best infoCAM, the
    centre prior). Anything not found says "not run" — never a number we did not measure.
    """
    from infocam.recipe import load_recipe
    from infocam.runs import REPO

    found: dict = {}
    root = Path(runs_folder).expanduser() if runs_folder else None
    if root is not None and not root.is_absolute() and not root.is_dir():
        root = REPO / root
    if root is not None and root.is_dir():
        for path in sorted(root.rglob("results.json")):
            try:
                res = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            recipe = res.get("recipe") if isinstance(res.get("recipe"), dict) else {}
            if recipe.get("name") in recipe_names:
                found[recipe["name"]] = res
    rows = []
    for name in recipe_names:
        dataset = load_recipe(name, check_device=False)["dataset"]["name"]
        res = found.get(name, {})
        loc = (res.get("localisation") or {}).get("methods", {})
        info = [k for k, v in loc.items() if v.get("role") == "infocam" and not k.endswith("-faithful")]
        best = max(info, key=lambda k: loc[k]["top1_loc"]) if info else None
        pct = lambda v: round(100 * float(v), 2) if v is not None else "not run"  # noqa: E731
        rows.append({"recipe": name, "dataset": paper.DATASET_TITLES.get(dataset, dataset),
                     "paper: infoCAM Top-1 Loc on the dataset": paper.INFOCAM_TOP1_LOC.get(dataset, "not reported"),
                     "ours: top-1 accuracy": pct(res.get("test_top1")),
                     "ours: CAM Top-1 Loc": pct(loc.get("cam", {}).get("top1_loc")),
                     "ours: best infoCAM Top-1 Loc": pct(loc[best]["top1_loc"] if best else None),
                     "ours: centre prior Top-1 Loc": pct(loc.get("centre", {}).get("top1_loc"))})
    return pd.DataFrame(rows).set_index("recipe")


def rungs(long: pd.DataFrame, metric: str = "top1_loc", order=None) -> pd.DataFrame:
    """One row per network (a rung of a training ladder, column ``network``): top-1 accuracy, CAM,
    the best infoCAM setting and the centre prior on ``metric`` (mean and sd over seeds), the paired
    per-seed gain infoCAM − CAM (mean, sd, min, max) and whether each map beats the prior in every
    seed. The best infoCAM setting is chosen per rung on the same scores, which favours it."""
    rows = []
    for rung in order or list(dict.fromkeys(long["network"])):
        part = long[long["network"] == rung]
        c = comparison(part, metric)
        acc = part[part["id"] == "cam"]["top1_accuracy"]
        rows.append({"rung": rung, "top1_accuracy": float(acc.mean()), "top1_accuracy_sd": float(acc.std()) if len(acc) > 1 else 0.0,
                     **{k: c[k] for k in ("best_infocam", "cam", "cam_sd", "infocam", "infocam_sd", "gain", "gain_sd",
                                          "gain_min", "gain_max", "seeds")},
                     **{k: c.get(k) for k in ("centre", "centre_sd", "infocam_beats_centre", "cam_beats_centre")}})
    return pd.DataFrame(rows).set_index("rung")


def trend(table: pd.DataFrame, long: pd.DataFrame, metric: str = "top1_loc") -> str:
    """How the paired gain infoCAM − CAM moves from rung to rung, in words, counting a step only where
    every seed moves the same way (seeds paired by their number); "no consistent change" otherwise."""
    steps = []
    names = list(table.index)
    for a, b in zip(names, names[1:]):
        ga = paired(long[long["network"] == a], table.loc[a, "best_infocam"], "cam", metric)
        gb = paired(long[long["network"] == b], table.loc[b, "best_infocam"], "cam", metric)
        d = (gb - ga).dropna()
        word = "shrinks" if len(d) and (d < 0).all() else "grows" if len(d) and (d > 0).all() else "changes inconsistently"
        steps.append(f"from {a} to {b} the gain {word} in every seed" if word != "changes inconsistently"
                     else f"from {a} to {b} the gain's change has no consistent sign across seeds")
    return "; ".join(steps)


def rungs_display(tables: dict, labels: dict | None = None, digits: int = 1) -> pd.DataFrame:
    """The ladder's table for a page: per rung and metric (``tables``: metric name → :func:`rungs`
    table) top-1 accuracy, CAM, the best infoCAM setting, the centre prior and the paired gain, in %."""
    f = lambda m, s: f"{100 * m:.{digits}f} ± {100 * s:.{digits}f}"  # noqa: E731
    first = next(iter(tables.values()))
    out = pd.DataFrame({"top-1 accuracy (%)": [f(m, s) for m, s in zip(first["top1_accuracy"], first["top1_accuracy_sd"])]},
                       index=pd.Index([(labels or {}).get(r, r) for r in first.index], name="rung"))
    for metric, t in tables.items():
        out[f"{metric}: CAM"] = [f(m, s) for m, s in zip(t["cam"], t["cam_sd"])]
        out[f"{metric}: best infoCAM"] = [f(m, s) for m, s in zip(t["infocam"], t["infocam_sd"])]
        out[f"{metric}: centre prior"] = [f(m, s) for m, s in zip(t["centre"], t["centre_sd"])]
        out[f"{metric}: gain (paired)"] = [f"{100 * m:+.{digits}f} ± {100 * s:.{digits}f}" for m, s in zip(t["gain"], t["gain_sd"])]
    return out


__all__ = ["best_infocam", "comparison", "display_table", "paired", "record", "rungs", "rungs_display", "stack", "summarise",
           "train_results", "trend", "verdict"]
