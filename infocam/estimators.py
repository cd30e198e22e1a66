"""Mutual-information estimators from samples, and the MI reading of a classifier's logits.

Used in chapter 2 (every estimator against the exact MI of Gaussian tasks) and chapter 3 (the
readings of trained LeNets and linear probes). :func:`softmax_reading` and
:func:`pc_softmax_reading` are the paper's central quantity, written once: every classifier in the
book (:class:`ClassifierEstimator`, :func:`infocam.probe.evaluate_probe`, chapter 3's LeNets) is
read through them. Exact values for finite distributions are in :mod:`infocam.information`.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.special import digamma
from sklearn.neighbors import KDTree, NearestNeighbors

from infocam.losses import check_priors, get_loss, label_priors, log_pc_softmax
from infocam.models.mlp import MLP, ConcatCritic
from infocam.train import fit, predict_logits
from infocam.utils import progress, seed_everything


# -- the MI reading of a classifier's logits ------------------------------------------------------


def _label_weights(y: torch.Tensor, num_classes: int, priors) -> torch.Tensor | None:
    """Weights p(y_i) / q(y_i) that move the evaluated labels' frequencies q to ``priors``.

    None when the evaluated labels already have the priors' frequencies (to float32 rounding of
    the priors), so the reading is then a plain mean.
    """
    p = check_priors(priors, num_classes)
    labels = y.cpu()
    q = torch.bincount(labels, minlength=num_classes).double() / len(labels)
    if bool((q > 0).all()) and torch.allclose(q, p, rtol=1e-6, atol=0.0):
        return None
    return (p[labels] / q[labels]).to(y.device)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> float:
    return float(values.mean() if weights is None else (weights * values).sum() / weights.sum())


def softmax_reading(logits: torch.Tensor, y, priors=None) -> float:
    """Î = log K − CE = mean_i [log softmax_{y_i} f(x_i) + log K] in nats (≤ log K).

    The bound H(Y) − CE with H(Y) replaced by log K: right only for balanced labels. With
    ``priors`` (the training label frequencies) the evaluated labels are reweighted to them as in
    :func:`pc_softmax_reading`, so both readings refer to the same label distribution.
    """
    f = torch.as_tensor(logits).double()
    y = torch.as_tensor(y, device=f.device).long()
    log_sm = torch.log_softmax(f, dim=-1).gather(1, y[:, None]).squeeze(1) + math.log(f.shape[1])
    return _weighted_mean(log_sm, None if priors is None else _label_weights(y, f.shape[1], priors))


def pc_softmax_reading(logits: torch.Tensor, y, priors) -> float:
    """Î = mean_i log PC_{y_i}(x_i), PC_y = e^{f_y} / Σ_y' p(y') e^{f_y'}, in nats (the paper's estimator).

    ``priors`` are the *training* label frequencies p(y): log PC_y(x) estimates the pointwise MI
    log p(y|x)/p(y) of the training distribution. Evaluated on held-out labels whose frequencies q
    differ from p (chapter 3's test sets keep fewer rare-class images than the training ratio),
    sample i is weighted by p(y_i)/q(y_i) — importance weights for a label shift with p(x|y)
    fixed — so the mean estimates I(X;Y) under p. When q = p the weights are 1 and it is a plain
    mean. Since log PC_y ≤ −log p(y), the reading never exceeds H(Y) (by construction).
    """
    f = torch.as_tensor(logits).double()
    y = torch.as_tensor(y, device=f.device).long()
    pmi = log_pc_softmax(f, priors).gather(1, y[:, None]).squeeze(1)
    return _weighted_mean(pmi, _label_weights(y, f.shape[1], priors))


# -- estimators from samples (chapter 2) --------------------------------------------------------
#
# Every estimator has one interface: ``make_estimator(name, num_classes, ...)``, then
# ``.fit(X_train, y_train)`` and ``.estimate(X_test, y_test)`` → nats. Inputs are checked before any
# training (see :func:`check_samples`) and standardised with the training split's mean and sd
# (I(X;Y) is invariant to this invertible map).

ESTIMATORS = ("softmax", "pc_softmax", "mine", "infonce", "nwj", "knn")
MINE_EMA = 0.01  # rate of MINE's moving average of E[e^T] (Belghazi et al. 2018)


def check_samples(X, y, num_classes: int, *, split: str = "training", require_all_classes: bool = False):
    """Validate samples for an estimator; return X as float32 (N, d) and y as int64 (N,).

    Raises one ValueError naming the problem: length mismatch, NaN/inf in X, labels that are not
    integers in 0..K−1, or (``require_all_classes``, the training split) a class with no sample.
    """
    X = np.asarray(X.detach().cpu() if hasattr(X, "detach") else X)
    y = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{split} X must be (N, d) or (N,), got shape {X.shape}")
    if y.ndim != 1:
        raise ValueError(f"{split} y must be a 1-D label vector, got shape {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"{split} X has {len(X)} samples but y has {len(y)}: they must match")
    if len(y) < 2:
        raise ValueError(f"{split} split needs at least 2 samples, got {len(y)}")
    if not np.issubdtype(X.dtype, np.number) or not np.all(np.isfinite(X)):
        bad = int((~np.isfinite(X.astype(np.float64))).any(axis=1).sum()) if np.issubdtype(X.dtype, np.number) else len(X)
        raise ValueError(f"{split} X contains NaN or inf in {bad} rows; drop or impute them first")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.number) and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise ValueError(f"{split} labels must be integers 0..{num_classes - 1}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"{split} labels must lie in 0..{num_classes - 1} (num_classes = {num_classes}); "
            f"found {int(y.min())}..{int(y.max())}"
        )
    if require_all_classes:
        missing = np.flatnonzero(np.bincount(y, minlength=num_classes) == 0)
        if len(missing):
            raise ValueError(
                f"classes {missing.tolist()} have no sample in the {split} split: their prior would "
                "be 0 (no PC-softmax correction, undefined marginal); add samples or relabel to fewer classes"
            )
    return X.astype(np.float32), y


class MIEstimator:
    """Base class: ``fit`` on a training split, ``estimate`` I(X;Y) in nats on a held-out split.

    ``priors`` (optional) overrides the training label frequencies used by PC-softmax, MINE and NWJ;
    it must be > 0 and sum to 1. ``device`` (a resolved ``torch.device``) is where training and
    the reading run; inputs stay NumPy on the caller's side.
    """

    name = "base"

    def __init__(self, num_classes: int, *, priors=None, seed: int = 0, device: torch.device | str = "cpu"):
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.seed = seed
        self.device = torch.device(device)
        self.user_priors = None if priors is None else check_priors(priors, self.num_classes)
        self.fitted = False

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.sd_

    def fit(self, X, y) -> MIEstimator:
        """Check the training split, then train (each subclass's :meth:`_fit`)."""
        X, y = check_samples(X, y, self.num_classes, split="training", require_all_classes=True)
        self.dim = X.shape[1]
        self.mean_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.sd_ = np.where(sd > 0, sd, 1.0).astype(np.float32)
        priors = self.user_priors if self.user_priors is not None else label_priors(y, self.num_classes)
        self.priors = priors.float()
        self._fit(self._scale(X), y)
        self.fitted = True
        return self

    def estimate(self, X, y) -> float:
        """I(X;Y) estimate in nats on a held-out split."""
        if not self.fitted:
            raise ValueError(f"{self.name}: call fit(X_train, y_train) before estimate")
        X, y = check_samples(X, y, self.num_classes, split="test")
        if X.shape[1] != self.dim:
            raise ValueError(f"test X has {X.shape[1]} features but the estimator was fitted on {self.dim}")
        return float(self._estimate(self._scale(X), y))

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _estimate(self, X: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError


class ClassifierEstimator(MIEstimator):
    """The paper's estimators: an MLP classifier trained with softmax or PC-softmax cross-entropy.

    * ``softmax``: Î = mean_i log softmax_{y_i}(f(x_i)) + log K (= log K − CE; ≤ log K).
    * ``pc_softmax``: Î = mean_i log PC_{y_i}(f(x_i)), PC_y = e^{f_y} / Σ_y' p(y') e^{f_y'}, with
      p(y) the training label frequencies (stable: logsumexp with log-priors). Unbiased for
      I(X;Y) at the optimum under any label priors; equal to ``softmax`` when they are uniform.

    Trained with Adam on minibatches (``epochs``, ``batch_size``, ``lr``) by :func:`infocam.train.fit`.
    """

    def __init__(self, num_classes: int, loss: str = "softmax", *, epochs: int = 20, batch_size: int = 500,
                 lr: float = 3e-3, **kwargs):
        super().__init__(num_classes, **kwargs)
        if loss not in ("softmax", "pc_softmax"):
            raise ValueError(f"loss must be 'softmax' or 'pc_softmax', got {loss!r}")
        self.name = loss
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr

    def _fit(self, X, y):
        seed_everything(self.seed)
        self.model = MLP(X.shape[1], self.num_classes)  # the paper's d → 100 → 100 → 100 → K
        loss_fn = get_loss(self.name, self.priors if self.name == "pc_softmax" else None)
        fit(self.model, torch.from_numpy(X), torch.from_numpy(y), loss_fn, device=self.device, epochs=self.epochs,
            batch_size=self.batch_size, lr=self.lr, optimizer="adam",
            seed=self.seed, desc=self.name)

    def logits(self, X) -> torch.Tensor:
        """Logits f(x) of raw inputs on the CPU (checked and standardised with the training statistics here)."""
        X, _ = check_samples(X, np.zeros(len(X), np.int64), self.num_classes, split="input")
        return predict_logits(self.model, torch.from_numpy(self._scale(X)).to(self.device)).cpu()

    def _estimate(self, X, y):
        f = predict_logits(self.model, torch.from_numpy(X).to(self.device))
        if self.name == "softmax":
            return softmax_reading(f, y)
        return pc_softmax_reading(f, y, self.priors)


class CriticEstimator(MIEstimator):
    """Variational bounds with a learned critic T(x, y) = MLP([x, onehot(y)]) (:class:`ConcatCritic`).

    * ``mine`` (Belghazi et al. 2018): Î = E_p[T] − log E_{p(x)p(y)}[e^T] (Donsker–Varadhan), trained
      with MINE's moving-average gradient correction: the gradient of log E[e^T] uses a running
      mean of E[e^T] (rate :data:`MINE_EMA`) in the denominator instead of the minibatch's.
    * ``nwj`` (Nguyen, Wainwright & Jordan; Poole et al. 2019): Î = E_p[T] − e^{−1} E_{p(x)p(y)}[e^T].
    * ``infonce`` (van den Oord et al. 2018; Poole et al. 2019): Î = mean over batches of size
      ``batch_size`` of mean_i[T(x_i, y_i) − log mean_j e^{T(x_i, y_j)}]; never above log(batch_size).

    For MINE and NWJ the product of marginals is taken exactly over the label: E_{p(x)p(y)}[e^T] =
    mean_i Σ_k p(k) e^{T(x_i, k)} with the training priors p(k), the same quantity as pairing x with
    shuffled labels but with less variance. Trained with Adam for ``steps`` minibatches.
    """

    def __init__(self, num_classes: int, bound: str = "mine", *, steps: int = 1000, batch_size: int = 256,
                 lr: float = 1e-3, **kwargs):
        super().__init__(num_classes, **kwargs)
        if bound not in ("mine", "nwj", "infonce"):
            raise ValueError(f"bound must be 'mine', 'nwj' or 'infonce', got {bound!r}")
        if steps < 1 or batch_size < 2:
            raise ValueError(f"steps must be >= 1 and batch_size >= 2 (got {steps}, {batch_size})")
        self.name = bound
        self.steps, self.batch_size, self.lr = steps, batch_size, lr

    def _terms(self, S, y):
        """(mean T on joint pairs, log E_{p(x)p(y)} e^T) from scores S (B, K)."""
        joint = S.gather(1, y[:, None]).squeeze(1)
        log_marg = torch.logsumexp(S + self.priors.to(S.device, S.dtype).log(), dim=1)  # log Σ_k p_k e^{T(x_i,k)}
        return joint.mean(), torch.logsumexp(log_marg, 0) - math.log(len(S))

    def _infonce(self, S, y):
        pairs = S[:, y]  # (B, B): T(x_i, y_j)
        return (pairs.diagonal() - torch.logsumexp(pairs, dim=1)).mean() + math.log(len(S))

    def _fit(self, X, y):
        seed_everything(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.critic = ConcatCritic(X.shape[1], self.num_classes).to(self.device)  # built on the CPU RNG
        opt = torch.optim.Adam(self.critic.parameters(), lr=self.lr)
        Xt, yt = torch.from_numpy(X).to(self.device), torch.from_numpy(y).to(self.device)
        batch = min(self.batch_size, len(Xt))
        ema = None
        self.critic.train()
        for _ in progress(range(self.steps), desc=self.name):
            idx = torch.randint(len(Xt), (batch,), generator=gen)
            opt.zero_grad(set_to_none=True)
            S = self.critic.scores(Xt[idx])
            if self.name == "infonce":
                loss = -self._infonce(S, yt[idx])
            else:
                joint, log_marg = self._terms(S, yt[idx])
                if self.name == "nwj":
                    loss = -(joint - torch.exp(log_marg - 1.0))
                else:
                    marg = torch.exp(log_marg)
                    ema = marg.detach() if ema is None else (1 - MINE_EMA) * ema + MINE_EMA * marg.detach()
                    loss = -(joint - marg / ema)  # ∇ log E e^T ≈ ∇ E e^T / (moving average of E e^T)
            loss.backward()
            opt.step()
        self.critic.eval()

    def _estimate(self, X, y):
        with torch.no_grad():
            Xt, yt = torch.from_numpy(X).to(self.device), torch.from_numpy(y).to(self.device)
            S = torch.cat([self.critic.scores(Xt[i : i + 4096]) for i in range(0, len(Xt), 4096)]).double()
            if self.name == "infonce":
                batch = min(self.batch_size, len(S))
                order = torch.randperm(len(S), generator=torch.Generator().manual_seed(self.seed))
                vals = [self._infonce(S[idx], yt[idx]) for idx in order[: len(S) // batch * batch].split(batch)]
                return float(torch.stack(vals).mean())
            joint, log_marg = self._terms(S, yt)
            return float(joint - (torch.exp(log_marg - 1.0) if self.name == "nwj" else log_marg))


class KNNEstimator(MIEstimator):
    """Ross (2014) k-nearest-neighbour estimator for continuous X and discrete Y.

    The estimator of scikit-learn's ``mutual_info_classif`` (identical to it for one feature, as
    the tests check) applied to the whole vector x rather than feature by feature, and not clipped
    at 0. Nothing is learned: ``fit`` only checks the training split; ``estimate`` uses the held-out one:
    Î = ψ(N) + ψ(k) − ⟨ψ(N_{y_i})⟩ − ⟨ψ(m_i)⟩, with m_i the points of any class within the distance
    of x_i's k-th neighbour of its own class.
    """

    name = "knn"

    def __init__(self, num_classes: int, *, k: int = 3, **kwargs):
        super().__init__(num_classes, **kwargs)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k

    def _fit(self, X, y):
        pass

    def _estimate(self, X, y):
        return ross_knn_mi(X, y, self.k)


def ross_knn_mi(X, y, k: int = 3) -> float:
    """Ross (2014) kNN estimate of I(X;Y) in nats, X (N, d) continuous, y (N,) discrete (unclipped)."""
    X = np.asarray(X, dtype=np.float64).reshape(len(y), -1)
    y = np.asarray(y)
    radius = np.full(len(y), np.nan)
    label_counts = np.zeros(len(y))
    k_all = np.zeros(len(y))
    for label in np.unique(y):
        mask = y == label
        count = int(mask.sum())
        label_counts[mask] = count
        if count > 1:
            kk = min(k, count - 1)
            r = NearestNeighbors(n_neighbors=kk).fit(X[mask]).kneighbors()[0]
            radius[mask] = np.nextafter(r[:, -1], 0)
            k_all[mask] = kk
    keep = label_counts > 1
    X, radius, label_counts, k_all = X[keep], radius[keep], label_counts[keep], k_all[keep]
    m = KDTree(X).query_radius(X, radius, count_only=True)
    return float(digamma(len(X)) + digamma(k_all).mean() - digamma(label_counts).mean() - digamma(m).mean())


def make_estimator(name: str, num_classes: int, **kwargs) -> MIEstimator:
    """An estimator by name (one of :data:`ESTIMATORS`); ``kwargs`` go to its constructor."""
    if name in ("softmax", "pc_softmax"):
        return ClassifierEstimator(num_classes, name, **kwargs)
    if name in ("mine", "nwj", "infonce"):
        return CriticEstimator(num_classes, name, **kwargs)
    if name == "knn":
        return KNNEstimator(num_classes, **kwargs)
    raise ValueError(f"unknown estimator {name!r}; choose one of {ESTIMATORS}")


def estimate_mi(name: str, train, test, num_classes: int, **kwargs) -> dict:
    """Fit ``name`` on ``train = (X, y)``, estimate on ``test = (X, y)``: dict(estimate, seconds).

    ``seconds`` is the wall time of fit plus estimate.
    """
    est = make_estimator(name, num_classes, **kwargs)
    started = time.perf_counter()
    value = est.fit(*train).estimate(*test)
    return {"estimator": name, "estimate": value, "seconds": time.perf_counter() - started}
