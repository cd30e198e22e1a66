"""Chapter 5's experiments: localisation maps of *trained* networks, scored against a centre prior.

Three pieces, each a call from the chapter:

* :func:`finetune_lite0` — fine-tune the last stage(s) of the ImageNet EfficientNet-Lite0, its
  1280-channel head conv and a new linear head on cached activations of its frozen early stages
  (:func:`infocam.models.backbones.split_lite0`), with the paper's recipe in small: SGD with
  Nesterov momentum, weight decay 1e-4, 10× learning rate on the new head, cosine schedule.
* :func:`collect_maps` — the maps of every method (CAM, infoCAM variants and windows, the
  network-free centre Gaussian) for the ground-truth class, from batches of final conv features.
* :func:`score_maps` — each method scored by :func:`infocam.wsol.evaluate`: τ chosen on one set
  of images with boxes, GT-known Loc, Top-1 Loc and MaxBoxAccV2 reported on another.

Plus the *original code's protocol* pieces measured beside the corrected ones
(:func:`original_protocol`: fixed τ = 0.2, accuracy as a running average over batches; the
full-padding window is a :class:`Method`), the ImageNet head restricted to a dataset's classes
(:func:`restricted_head`) and the paper-scale results table (:func:`paper_results`). Used in chapter 5.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from infocam import wsol
from infocam.cam import class_maps
from infocam import paper

CENTRE = "centre Gaussian"
# The paper's Top-1 Loc of infoCAM (Table 4 of arXiv 1911.10688): the two numbers this book checks.
PAPER_TOP1_LOC = {paper.DATASET_TITLES[k]: v for k, v in paper.INFOCAM_TOP1_LOC.items()}


@dataclass(frozen=True)
class Method:
    """One way to turn features into a map: ``variant``/``window``/``mode`` of :func:`infocam.cam.class_maps`,
    or the centre prior (``variant="centre"``)."""

    name: str
    variant: str
    window: int = 1
    mode: str = "same"


def methods(windows=(1, 3), faithful_window: int | None = 3) -> list[Method]:
    """CAM, infoCAM mean-others / least-likely at each window, the centre prior, and (if given)
    mean-others with the original code's full-padding window."""
    out = [Method("CAM", "none")]
    out += [Method(f"infoCAM mean-others k={k}", "mean-others", k) for k in windows]
    out += [Method(f"infoCAM least-likely k={k}", "least-likely", k) for k in windows]
    if faithful_window:
        out.append(Method(f"infoCAM mean-others k={faithful_window} faithful", "mean-others", faithful_window, "faithful"))
    out.append(Method(CENTRE, "centre"))
    return out


def collect_maps(batches, weight: torch.Tensor, method_list: list[Method]) -> dict[str, np.ndarray]:
    """Maps (N, h', w') of each method for the given classes, over batches of features.

    ``batches`` yields ``(features (n, C, h, w), class_idx (n,), logits (n, K))``; ``weight`` is
    the head's (K, C) matrix. Float32 NumPy arrays, one per method name.
    """
    out = {m.name: [] for m in method_list}
    weight = weight.detach().float()
    for feats, idx, logits in batches:
        feats = torch.as_tensor(feats).float()
        for m in method_list:
            if m.variant == "centre":
                maps = torch.from_numpy(np.ascontiguousarray(wsol.centre_prior(len(feats), *feats.shape[2:])))
            else:
                maps = class_maps(feats, weight, torch.as_tensor(idx), torch.as_tensor(logits).float(),
                                  variant=m.variant, window=m.window, mode=m.mode)
            out[m.name].append(maps.numpy().astype(np.float32))
    return {k: np.concatenate(v) for k, v in out.items()}


def feature_batches(features, labels, weight, bias=None, batch_size: int = 256, transform=None, index=None):
    """``(features, labels, logits)`` batches of cached features (NumPy/memmap ok), for :func:`collect_maps`.

    ``index`` (sorted positions) selects rows of ``features``/``labels`` (a memmap reads only
    those); ``transform`` maps a float32 batch to the final conv features (e.g. a fine-tuned
    Lite0 top applied to cached trunk activations); logits are GAP(features) @ weightᵀ + bias.
    """
    weight = weight.detach().float()
    index = np.arange(len(labels)) if index is None else np.asarray(index)
    for start in range(0, len(index), batch_size):
        rows = index[start : start + batch_size]
        x = torch.from_numpy(np.asarray(features[rows], dtype=np.float32))
        with torch.no_grad():
            f = transform(x) if transform is not None else x
            logits = f.mean((2, 3)) @ weight.T
            if bias is not None:
                logits = logits + bias.detach().float()
        yield f, np.asarray(labels)[rows], logits


def maps_and_correct(features, labels, weight, bias, method_list, transform=None, index=None,
                     batch_size: int = 256) -> tuple[dict, np.ndarray]:
    """Maps of every method for the true class, and whether each image's top-1 class is right."""
    hits = []

    def batches():
        for f, y, logits in feature_batches(features, labels, weight, bias, batch_size, transform, index):
            hits.append(logits.argmax(1).numpy() == y)
            yield f, y, logits

    maps = collect_maps(batches(), weight, method_list)
    return maps, np.concatenate(hits)


def score_maps(maps: dict, sel, rep, boxes: np.ndarray, correct: np.ndarray, image_size,
                  thresholds=None) -> pd.DataFrame:
    """Every method scored by :func:`infocam.wsol.evaluate`: τ on the images ``sel`` (positions or
    mask), GT-known Loc / Top-1 Loc / MaxBoxAccV2 on the images ``rep``. One row per method."""
    rows = []
    for name, m in maps.items():
        r = wsol.evaluate(m[sel], boxes[sel], m[rep], boxes[rep], correct[rep], image_size, thresholds)
        r.pop("curve", None)
        rows.append({"method": name, **{k: float(v) for k, v in r.items()}})
    return pd.DataFrame(rows).set_index("method")


# -- fine-tuning the last stage(s) of Lite0 -----------------------------------------------------


def _lite0(image_size: int):
    from infocam.models.backbones import efficientnet_lite0

    return efficientnet_lite0(pretrained=True, image_size=image_size)


@torch.no_grad()
def advance(acts, cut: str, trainable_from: str, image_size: int = 224, batch_size: int = 256) -> np.ndarray:
    """Run cached trunk activations (after stage ``cut``) through the frozen pretrained stages up to
    ``trainable_from``: the input of the part that trains. Float16 like the cache."""
    from infocam.models.backbones import LITE0_STAGES, Lite0Top, lite0_cut_before

    target = lite0_cut_before(trainable_from)
    if target == cut:
        return np.asarray(acts)
    if LITE0_STAGES.index(target) < LITE0_STAGES.index(cut):
        raise ValueError(f"activations cached after {cut} cannot feed training from {trainable_from}: "
                         f"cache them after {target} (or earlier)")
    model = _lite0(image_size).eval()
    rest = Lite0Top(model, LITE0_STAGES[LITE0_STAGES.index(cut) + 1]).stages
    keep = len(rest.blocks) - len(Lite0Top(model, trainable_from).stages.blocks)
    out = []
    for start in range(0, len(acts), batch_size):
        x = torch.from_numpy(np.asarray(acts[start : start + batch_size], dtype=np.float32))
        for block, rate in zip(rest.blocks[:keep], rest._rates[:keep]):
            x = block(x, drop_connect_rate=rate)
        out.append(x.half().numpy())
    return np.concatenate(out)


def finetune_lite0(acts, labels, num_classes: int, *, trainable_from: str = "head", epochs: int = 6,
                   batch_size: int = 64, lr: float = 0.01, head_lr_mult: float = 10.0, weight_decay: float = 1e-4,
                   seed: int = 0, device="cpu", image_size: int = 224, on_epoch=None) -> nn.Module:
    """Fine-tune Lite0 from ``trainable_from`` on the activations that feed it; returns the trained top.

    ``acts`` (N, C, h, w) are the frozen part's outputs (``split_lite0``'s cut, see :func:`advance`);
    the pretrained stages from ``trainable_from`` and the 1280-channel head conv start from their
    ImageNet weights, the linear head ``_fc`` (1280 → ``num_classes``) from scratch at
    ``head_lr_mult`` × ``lr`` (SGD, Nesterov momentum 0.9, cosine schedule). The top's
    ``features(a)`` are the final (N, 1280, h, w) maps, ``_fc`` the head a CAM reads.
    """
    from infocam.models.backbones import split_lite0
    from infocam.train import fit

    torch.manual_seed(seed)
    _, top = split_lite0(_lite0(image_size), trainable_from)
    top._fc = nn.Linear(top._fc.in_features, num_classes)
    X = torch.as_tensor(np.asarray(acts, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels)).long()
    fit(top, X, y, F.cross_entropy, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9, nesterov=True,
        weight_decay=weight_decay, optimizer="sgd", head="_fc", head_lr_mult=head_lr_mult, schedule="cosine",
        seed=seed, device=device, desc=f"fine-tune from {trainable_from}, seed {seed}", on_epoch=on_epoch)
    return top.cpu().eval()


def finetune_head(pooled: torch.Tensor, labels, weight: torch.Tensor, bias: torch.Tensor, *, epochs: int = 10,
                  lr: float = 0.01, batch_size: int = 128, weight_decay: float = 1e-4, seed: int = 0,
                  device="cpu") -> nn.Linear:
    """A linear head started from ``weight``/``bias`` (e.g. :func:`restricted_head`) and trained on
    pooled features (SGD, Nesterov momentum 0.9, cosine schedule): the restricted ImageNet head
    after training on a dataset's own images. Used in chapter 5 (Tiny-ImageNet's training images)."""
    from infocam.train import fit

    head = nn.Linear(weight.shape[1], weight.shape[0])  # its random start is overwritten; fit seeds itself
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    fit(head, torch.as_tensor(pooled).float(), torch.as_tensor(np.asarray(labels)).long(), F.cross_entropy,
        epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay,
        optimizer="sgd", schedule="cosine", seed=seed, device=device, desc=f"head seed {seed}")
    return head.cpu().eval()


def restricted_head(wnids, image_size: int = 224) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the pretrained Lite0's 1,000-way head for a dataset's ImageNet classes: (K, 1280), (K,).

    The class order comes from :func:`infocam.imagenet.wnid_indices`; the restricted head
    classifies the dataset (argmax over its K classes) with no training. Used in chapter 5.
    """
    from infocam.imagenet import wnid_indices

    fc = _lite0(image_size)._fc
    rows = torch.tensor(wnid_indices(wnids))
    return fc.weight.detach()[rows].clone(), fc.bias.detach()[rows].clone()


def snapshot(model: nn.Module) -> dict:
    """A CPU copy of a model's state (to keep every epoch's weights for model selection)."""
    return {k: v.detach().cpu().clone() for k, v in copy.deepcopy(model.state_dict()).items()}


@torch.no_grad()
def pooled_features(transform, acts, index=None, batch_size: int = 256) -> torch.Tensor:
    """Global-average-pooled final features (N, 1280) of cached activations through ``transform``."""
    index = np.arange(len(acts)) if index is None else np.asarray(index)
    return torch.cat([transform(torch.from_numpy(np.asarray(acts[index[i : i + batch_size]], dtype=np.float32)))
                      .mean((2, 3)) for i in range(0, len(index), batch_size)])


def frozen_top(trainable_from: str = "head", image_size: int = 224) -> nn.Module:
    """The pretrained (not fine-tuned) part of Lite0 after the cut: chapter 4's frozen features."""
    from infocam.models.backbones import split_lite0

    _, top = split_lite0(_lite0(image_size), trainable_from)
    for p in top.parameters():
        p.requires_grad_(False)
    return top.eval()


def linear_probe(pooled: torch.Tensor, labels, num_classes: int, *, epochs: int = 40, seed: int = 0) -> nn.Linear:
    """Chapter 4's linear head on frozen pooled features (Adam, lr 1e-3, weight decay 1e-4)."""
    from infocam.train import fit

    torch.manual_seed(seed)
    head = nn.Linear(pooled.shape[1], num_classes)
    fit(head, pooled, torch.as_tensor(np.asarray(labels)).long(), F.cross_entropy, epochs=epochs, batch_size=64,
        lr=1e-3, weight_decay=1e-4, optimizer="adam", seed=seed, desc=f"frozen probe seed {seed}")
    return head.eval()


def cub_boxes(cub, index, size: int) -> np.ndarray:
    """Official boxes of ``cub`` images ``index`` as xyxy in a size×size resized image (reference rules)."""
    index = np.asarray(index)
    return wsol.resize_boxes(wsol.xywh_to_xyxy(cub.boxes[index]), cub.sizes[index], (size, size))


def cub_fixture(root, num_classes: int = 4, n_train: int = 8, n_test: int = 8, seed: int = 0) -> Path:
    """A generated folder in the official CUB-200-2011 layout: a bright square "bird" on noise per
    image, its box the square. Chapter 5 runs on it (and says so) when no CUB folder is present."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(root) / "CUB_200_2011"
    tables = {k: [] for k in ("images", "image_class_labels", "train_test_split", "bounding_boxes")}
    image_id = 0
    for c in range(1, num_classes + 1):
        name = f"{c:03d}.Fixture_bird_{c}"
        (folder / "images" / name).mkdir(parents=True, exist_ok=True)
        for j in range(n_train + n_test):
            image_id += 1
            w, h = (int(v) for v in rng.integers(80, 120, size=2))
            bw, bh = int(rng.integers(w // 3, w // 2)), int(rng.integers(h // 3, h // 2))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            pixels = rng.integers(0, 90, size=(h, w, 3)).astype(np.uint8)
            pixels[y : y + bh, x : x + bw] = [60 * c % 256, 200, 255 - 50 * c % 256]
            Image.fromarray(pixels).save(folder / "images" / name / f"{j}.jpg", quality=92)
            tables["images"].append(f"{image_id} {name}/{j}.jpg")
            tables["image_class_labels"].append(f"{image_id} {c}")
            tables["train_test_split"].append(f"{image_id} {int(j < n_train)}")
            tables["bounding_boxes"].append(f"{image_id} {x}.0 {y}.0 {bw}.0 {bh}.0")
    for name, rows in tables.items():
        (folder / f"{name}.txt").write_text("\n".join(rows) + "\n")
    (folder / "classes.txt").write_text("".join(f"{c} {c:03d}.Fixture_bird_{c}\n" for c in range(1, num_classes + 1)))
    return folder


def show(ax, image, heat, tau: float, gt_box, title: str = "") -> None:
    """One panel: the image, a normalised map over it, its box at τ (red), the true box (green)."""
    from matplotlib.patches import Rectangle

    ax.imshow(image)
    ax.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
    boxes = [*wsol.boxes_from_map(heat, [tau])[0], gt_box]
    for (x0, y0, x1, y1), colour in zip(boxes, ["red"] * (len(boxes) - 1) + ["lime"]):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec=colour, lw=1.2))
    ax.set_title(title, fontsize=7)
    ax.axis("off")


# -- the original code's protocol, measured beside the corrected one ---------------------------


def original_protocol(maps: dict, rep, boxes: np.ndarray, correct: np.ndarray, image_size,
                      corrected: pd.DataFrame, batch_size: int = 32) -> pd.DataFrame:
    """Per method, the corrected Top-1 Loc beside the original code's: fixed τ = 0.2
    (:data:`infocam.wsol.ORIGINAL_TAU`), and that accuracy reported as a running average over
    batches of ``batch_size`` (:func:`infocam.wsol.batch_running_average`)."""
    rows = []
    hit_correct = np.asarray(correct[rep], dtype=bool)
    for name, m in maps.items():
        # wsol.evaluate(protocol="original"), with and without running_average, computes these same
        # IoUs twice; one pass gives both numbers (tests/test_localise.py checks they are equal)
        ious = wsol.iou_curves(wsol.prepare(m[rep], image_size), boxes[rep], [wsol.ORIGINAL_TAU])[:, 0]
        rows.append({"method": name, "corrected": float(corrected.loc[name, "top1_loc"]),
                     "fixed τ=0.2": wsol.top1_loc(ious, hit_correct),
                     "fixed τ=0.2, running average": wsol.batch_running_average((ious >= 0.5) & hit_correct, batch_size)})
    return pd.DataFrame(rows).set_index("method")


# -- the paper-scale table -------------------------------------------------------------------


def paper_results(runs_folder, recipe_names) -> pd.DataFrame:
    """One row per paper recipe, filled from the ``results.json`` files under ``runs_folder``.

    A relative ``runs_folder`` that is not a folder here is taken from the repository root.
    ``infocam train <recipe>`` writes ``results.json`` with the recipe, its test top-1 accuracy
    and, under ``cam`` and ``infocam``, the localisation scores of its maps (reference protocol,
    τ chosen on the selection half). Anything not found says "not run" — never a number we did
    not measure. Beside it, the paper's best infoCAM Top-1 Loc on the recipe's dataset.
    """
    from infocam.runs import REPO

    found: dict = {}
    root = Path(runs_folder).expanduser() if runs_folder else None
    if root is not None and not root.is_absolute() and not root.is_dir():
        root = REPO / root  # chapters run with the book folder as cwd; runs/train lives at the top
    if root is not None and root.is_dir():
        for path in sorted(root.rglob("results.json")):
            try:
                res = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            recipe = res.get("recipe")
            name = recipe.get("name") if isinstance(recipe, dict) else (res.get("parameters") or {}).get("recipe")
            if name not in recipe_names:
                continue
            entry = found.setdefault(name, {})
            if res.get("test_top1") is not None:
                entry["top1"] = round(100 * float(res["test_top1"]), 2)
            for method in ("cam", "infocam"):
                if (res.get(method) or {}).get("top1_loc") is not None:
                    entry[method] = round(100 * float(res[method]["top1_loc"]), 2)
    rows = []
    for name in recipe_names:
        dataset = "Tiny-ImageNet" if "tiny" in name else "CUB-200-2011"
        got = found.get(name, {})
        rows.append({"recipe": name, "dataset": dataset,
                     "paper: best infoCAM Top-1 Loc on the dataset": PAPER_TOP1_LOC[dataset],
                     "ours: top-1 accuracy": got.get("top1", "not run"),
                     "ours: CAM Top-1 Loc": got.get("cam", "not run"),
                     "ours: infoCAM Top-1 Loc": got.get("infocam", "not run")})
    return pd.DataFrame(rows).set_index("recipe")


__all__ = [
    "CENTRE", "Method", "PAPER_TOP1_LOC", "collect_maps", "feature_batches", "finetune_lite0", "methods",
    "original_protocol", "paper_results", "restricted_head", "score_maps", "snapshot", "advance", "cub_boxes",
    "cub_fixture", "finetune_head", "frozen_top", "linear_probe", "maps_and_correct", "pooled_features", "show",
]
