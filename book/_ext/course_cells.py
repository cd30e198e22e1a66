"""Learning goals, prerequisites and exercises of each chapter, and the script that places them.

The chapters are written by several people at once, so the course cells live here and are placed
by ``python book/_ext/course_cells.py [chapter ...]``: it re-reads each notebook, removes the
cells it placed before (cell ids starting with ``course-``), inserts the learning goals right
after the title cell and the exercises at the very end, and writes the notebook back at once
(outputs stripped). Solutions are executable cells between sphinx-exercise's gated
``solution-start`` / ``solution-end`` directives: they run in the book build (default profile)
and under nbval (smoke profile), see the chapter's parameters, call ``infocam`` and assert their
answer. ``make book-student`` drops them (``book/_ext/course.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent.parent
PREFIX = "course-"


def goals(goal_lines: list[str], prerequisites: str) -> str:
    bullets = "\n".join(f"- {g}" for g in goal_lines)
    return (f"```{{admonition}} Learning goals\n:class: tip\n\nAfter this chapter you can\n\n{bullets}\n```\n\n"
            f"**Prerequisites.** {prerequisites}")


def exercise(label: str, title: str, text: str) -> str:
    return f"```{{exercise}} {title}\n:label: {label}\n\n{text}\n```"


def solution_start(label: str, text: str) -> str:
    return f"````{{solution-start}} {label}\n:class: dropdown\n````\n\n{text}"


SOLUTION_END = "````{solution-end}\n````"

INTRO = ("## Exercises\n\nThe exercises run on this chapter's parameters (the variables of its first code "
         "cell), so they scale with the profile you run. Predict before you run. Each solution is a code cell "
         "that computes the answer and asserts it; the student edition of the book (`make book-student`) "
         "leaves the solutions out.")

# Each chapter: goals, prerequisites, and exercises as (label, title, text, solution text, solution code).
CHAPTERS: dict[str, dict] = {
    "01_theory": {
        "goals": [
            "derive the Barber–Agakov bound $I(X;Y) \\ge H(Y) - \\mathrm{CE}(q)$ and say when it is tight;",
            "explain why $\\log K - \\mathrm{CE}$ overestimates $I(X;Y)$ by $\\log K - H(Y)$ when labels are imbalanced;",
            "show that the mean of $\\log \\mathrm{PC}_y(x)$ is $I(X;Y)$ at the optimum, and that PC-softmax, "
            "logit adjustment ($\\tau = 1$) and Balanced Softmax have the same gradients;",
            "check such identities exactly on a distribution small enough to write down.",
        ],
        "prerequisites": ("None within the book: this is the first chapter. Maths: discrete probability "
                          "(joint, marginal and conditional distributions, Bayes' rule), entropy and the "
                          "Kullback–Leibler divergence, the softmax function and the gradient of a log-sum-exp."),
        "exercises": [
            ("ex-theory-bound", "Where the bound peaks",
             "Blend the Bayes posterior with the uniform classifier, $q_\\lambda = (1-\\lambda)\\,p(y\\mid x) + "
             "\\lambda / K$, on the chapter's balanced task. Before computing: for which $\\lambda \\in [0, 1]$ is "
             "$\\log K - \\mathrm{CE}(q_\\lambda)$ largest, and what is its value there? What is it at "
             "$\\lambda = 1$? Check with `infocam.information`.",
             "The reading is largest at $\\lambda = 0$, where $q$ is the posterior and the bound is tight "
             "($= I(X;Y)$); at $\\lambda = 1$ the classifier ignores $x$ and the reading is exactly $0$.",
             """import numpy as np
from infocam import information
from infocam.data.discrete import random_joint

joint_ex = random_joint(num_x, np.full(num_classes, 1 / num_classes), concentration, seed)
posterior_ex, I_exact = information.posterior(joint_ex), information.mutual_information(joint_ex)
lambdas = np.linspace(0, 1, 11)
readings_ex = [np.log(num_classes) - information.cross_entropy(joint_ex, (1 - lam) * posterior_ex + lam / num_classes)
            for lam in lambdas]
print(f"I(X;Y) = {I_exact:.4f} nats; log K − CE(q_λ) for λ = 0, 0.1, …, 1:", np.round(readings_ex, 4))
assert np.argmax(readings_ex) == 0 and abs(readings_ex[0] - I_exact) < 1e-10
assert abs(readings_ex[-1]) < 1e-10 and all(r <= I_exact + 1e-12 for r in readings_ex)"""),
            ("ex-theory-rare", "One class ten times rarer",
             "Give the last class a prior ten times smaller than the others' (priors $\\propto (1, \\dots, 1, "
             "0.1)$). *Predict*: at the optimum $q = p(y\\mid x)$, does the softmax reading $\\log K - "
             "H(Y\\mid X)$ land above or below $I(X;Y)$, and by how much exactly? What does the PC-softmax "
             "reading (the mean of $\\log p(y\\mid x)/p(y)$) give? Then *observe*.",
             "Softmax overestimates by exactly $\\log K - H(Y) > 0$ (the entropy the rare class takes away); "
             "PC-softmax reads $I(X;Y)$ exactly, whatever the priors.",
             """import numpy as np
from infocam import information
from infocam.data.discrete import random_joint

rare_priors_ex = np.ones(num_classes)
rare_priors_ex[-1] = 0.1
rare_priors_ex /= rare_priors_ex.sum()
rare_joint = random_joint(num_x, rare_priors_ex, concentration, seed)
I_rare, H_rare = information.mutual_information(rare_joint), information.entropy(rare_priors_ex)
softmax_reading = np.log(num_classes) - (H_rare - I_rare)      # log K − H(Y|X)
pc_reading = float((rare_joint * np.log(information.posterior(rare_joint) / rare_priors_ex)).sum())
print(f"I(X;Y) = {I_rare:.4f}; softmax reading {softmax_reading:.4f} (bias {softmax_reading - I_rare:+.4f}, "
      f"log K − H(Y) = {np.log(num_classes) - H_rare:.4f}); PC-softmax reading {pc_reading:.4f}")
assert softmax_reading > I_rare
assert abs((softmax_reading - I_rare) - (np.log(num_classes) - H_rare)) < 1e-10
assert abs(pc_reading - I_rare) < 1e-10"""),
            ("ex-theory-concentration", "How informative is $x$?",
             "The parameter `concentration` is the Dirichlet concentration of the class-conditionals $p(x\\mid y)$. "
             "*Predict*: as it goes from $0.05$ to $5$, does $I(X;Y)$ rise or fall, and towards which limits? "
             "Average over twenty seeds and *observe*.",
             "Small concentrations give spiky, nearly disjoint class-conditionals, so $x$ nearly determines $y$ "
             "and $I(X;Y)$ approaches $H(Y) = \\log K$; large ones make every $p(x\\mid y)$ close to uniform and "
             "$I(X;Y)$ approaches $0$.",
             """import numpy as np
from infocam import information
from infocam.data.discrete import random_joint

uniform_ex = np.full(num_classes, 1 / num_classes)
sweep_ex = {c: float(np.mean([information.mutual_information(random_joint(num_x, uniform_ex, c, s))
                           for s in range(seed, seed + 20)])) for c in (0.05, 0.5, 5.0)}
print({c: round(v, 4) for c, v in sweep_ex.items()}, f"log K = {np.log(num_classes):.4f}")
assert np.log(num_classes) > sweep_ex[0.05] > sweep_ex[0.5] > sweep_ex[5.0] > 0"""),
            ("ex-theory-tau", "Logit adjustment with another $\\tau$",
             "The logit-adjusted loss adds $\\tau \\log p(y)$ to the logits. The chapter showed that $\\tau = 1$ "
             "has PC-softmax's gradients. Compare the gradients for $\\tau \\in \\{0, 0.5, 1, 2\\}$ on random "
             "logits. Open question: what does a classifier trained with $\\tau \\neq 1$ estimate, if not the "
             "pointwise mutual information?",
             "Only $\\tau = 1$ matches. At the optimum of the logit-adjusted loss, $f_y(x) + \\tau\\log p(y) = "
             "\\log p(y\\mid x) + c(x)$, so $f_y(x) = \\mathrm{PMI}(x, y) + (1-\\tau)\\log p(y) + c(x)$: for "
             "$\\tau \\ne 1$ the logits carry a prior term and their PC-softmax reading is no longer the MI.",
             """import numpy as np
import torch
from infocam import losses
from infocam.data.discrete import geometric_priors

gen_ex = torch.Generator().manual_seed(seed)
logits_ex = torch.randn(64, num_classes, generator=gen_ex, dtype=torch.float64) * 3
targets_ex = torch.randint(num_classes, (64,), generator=gen_ex)
priors_ex = torch.tensor(geometric_priors(num_classes, imbalance))

def gradient(loss_fn):
    f = logits_ex.clone().requires_grad_(True)
    loss_fn(f).backward()
    return f.grad

g_pc = gradient(lambda f: losses.pc_softmax_cross_entropy(f, targets_ex, priors_ex))
gaps = {tau: float((gradient(lambda f: losses.logit_adjusted_loss(f, targets_ex, priors_ex, tau=tau)) - g_pc).abs().max())
        for tau in (0.0, 0.5, 1.0, 2.0)}
print({tau: f"{gap:.1e}" for tau, gap in gaps.items()})
assert gaps[1.0] < 1e-12 and min(gaps[t] for t in (0.0, 0.5, 2.0)) > 1e-4"""),
        ],
    },
    "02_synthetic_mi": {
        "goals": [
            "use a trained classifier as a mutual-information estimator (softmax and PC-softmax readings) "
            "and compare it with MINE, InfoNCE, NWJ and kNN against an exact ground truth;",
            "explain the $\\log K$ ceiling of the softmax reading and the $\\log(\\text{batch})$ ceiling of InfoNCE;",
            "measure the bias of each estimator under label imbalance and explain it;",
            "report estimates over several seeds as mean ± standard deviation.",
        ],
        "prerequisites": ("{doc}`01_theory` (the bound, the imbalance bias, PC-softmax). Maths: multivariate "
                          "Gaussians, Monte-Carlo estimates and their standard errors; training a small "
                          "network with minibatch gradient descent."),
        "exercises": [
            ("ex-synthetic-ceiling", "The softmax ceiling",
             "On the paper's task in $d = 10$ the exact MI is close to $\\log 5$. *Predict*: can the softmax "
             "reading $\\log K - \\mathrm{CE}$ ever exceed $\\log 5$, even with a perfect classifier? Train one "
             "with the chapter's settings and *observe*.",
             "No: $-\\mathrm{CE} \\le 0$, so the reading is at most $\\log K$ whatever the classifier; it can "
             "only approach $\\log 5$ as the classes separate.",
             """import numpy as np
from infocam import estimators
from infocam.data import synthetic

task10 = synthetic.paper_task(10)
train10 = task10.sample(synthetic.paper_counts(train_per_class), seed)
test10 = task10.sample(synthetic.paper_counts(max(train_per_class // 5, 1)), seed + 1)
reading10 = estimators.ClassifierEstimator(5, "softmax", epochs=epochs, batch_size=batch_size, lr=lr,
                                           seed=seed).fit(*train10).estimate(*test10)
print(f"d = 10: exact MI {task10.exact_mi():.4f}, softmax reading {reading10:.4f}, log 5 = {np.log(5):.4f} nats")
assert reading10 <= np.log(5) and task10.exact_mi() <= np.log(5)"""),
            ("ex-synthetic-rare", "One class ten times rarer",
             "Take the paper's task in $d = 2$ but make the last class ten times rarer than the other four "
             "(priors $\\propto (1, 1, 1, 1, 0.1)$). *Predict*: by how much will the softmax reading miss the "
             "exact MI, and in which direction? And the PC-softmax reading? Train both on the same samples "
             "and *observe* (held-out estimates, within the chapter's `tol`). Chapter 1 asked the same question "
             "at the optimum: {ref}`the exact answer <ex-theory-rare>`.",
             "Softmax overestimates by about $\\log 5 - H(Y)$ — the gap chapter 1 derived at the optimum; "
             "PC-softmax stays within the tolerance of the exact MI.",
             """import numpy as np
from infocam import estimators
from infocam.data import synthetic

rare_priors = np.array([1, 1, 1, 1, 0.1]) / 4.1
rare_task = synthetic.diagonal_task(synthetic.PAPER_OFFSETS, dim=2, priors=rare_priors)
rare_train = rare_task.sample(rare_task.counts(5 * train_per_class), seed)
rare_test = rare_task.sample(rare_task.counts(train_per_class), seed + 1)
exact_rare, gap_rare = rare_task.exact_mi(), np.log(5) - rare_task.label_entropy
rare_readings = {loss: estimators.ClassifierEstimator(5, loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
                 .fit(*rare_train).estimate(*rare_test) for loss in ("softmax", "pc_softmax")}
print(f"exact MI {exact_rare:.4f}, log 5 − H(Y) = {gap_rare:.4f}; "
      + ", ".join(f"{k}: {v:.4f} (bias {v - exact_rare:+.4f})" for k, v in rare_readings.items()))
assert abs((rare_readings["softmax"] - exact_rare) - gap_rare) <= tol
assert abs(rare_readings["pc_softmax"] - exact_rare) <= tol"""),
            ("ex-synthetic-infonce", "InfoNCE with a tiny batch",
             "InfoNCE contrasts each pair with the other pairs in its batch. *Predict*: on the $d = 10$ task, "
             "what is the most a batch of four can report, and will it reach the exact MI? *Observe* with "
             "`estimators.CriticEstimator(5, \"infonce\", batch_size=4)`.",
             "At most $\\log 4$ nats, which is below the exact MI here: a small batch caps InfoNCE below the "
             "truth however well the critic is trained.",
             """import numpy as np
from infocam import estimators
from infocam.data import synthetic

task10 = synthetic.paper_task(10)
nce4 = estimators.CriticEstimator(5, "infonce", steps=critic_steps, batch_size=4, lr=critic_lr, seed=seed)
nce4_reading = nce4.fit(*task10.sample(synthetic.paper_counts(train_per_class), seed)).estimate(
    *task10.sample(synthetic.paper_counts(max(train_per_class // 5, 1)), seed + 1))
print(f"InfoNCE, batch 4: {nce4_reading:.4f} nats; log 4 = {np.log(4):.4f}; exact MI {task10.exact_mi():.4f}")
assert nce4_reading <= np.log(4) < task10.exact_mi()"""),
            ("ex-synthetic-linear", "Is depth needed?",
             "The paper's classifier is an MLP with three hidden layers. Open question: which classifiers can "
             "reach the exact MI on these Gaussian tasks? Train a *linear* classifier (`torch.nn.Linear`) in "
             "$d = 1$, read it with `estimators.softmax_reading`, and explain what you see from the form of the "
             "Bayes posterior.",
             "A linear classifier suffices. With equal identity covariances, $\\log p(y\\mid x) = \\mu_y^\\top x - "
             "\\lVert\\mu_y\\rVert^2/2 + \\log p(y) + c(x)$ is linear in $x$, so the Bayes posterior is a softmax "
             "of linear logits and a linear classifier can attain the bound. (It needs a larger learning rate "
             "and more epochs than the MLP.)",
             """import numpy as np
import torch
from infocam import estimators
from infocam.data import synthetic
from infocam.losses import softmax_cross_entropy
from infocam.train import fit, predict_logits

task1 = synthetic.paper_task(1)
X1, y1 = (torch.from_numpy(a) for a in task1.sample(synthetic.paper_counts(train_per_class), seed))
X1_test, y1_test = (torch.from_numpy(a) for a in task1.sample(synthetic.paper_counts(max(train_per_class // 5, 1)), seed + 1))
torch.manual_seed(seed)
linear = torch.nn.Linear(1, 5)
fit(linear, X1, y1, softmax_cross_entropy, epochs=40, batch_size=batch_size, lr=0.05, optimizer="adam", seed=seed,
    desc="linear")
linear_reading = estimators.softmax_reading(predict_logits(linear, X1_test), y1_test)
print(f"d = 1, linear classifier: {linear_reading:.4f} nats; exact MI {task1.exact_mi():.4f}")
assert abs(linear_reading - task1.exact_mi()) <= tol"""),
        ],
    },
    "03_imbalanced": {
        "goals": [
            "build the paper's imbalanced MNIST split and compute the label entropy it implies;",
            "train with softmax and PC-softmax cross-entropy and compare accuracy with mean per-class accuracy;",
            "relate PC-softmax to post-hoc logit adjustment and to the other long-tail losses;",
            "judge an improvement over seeds with paired differences.",
        ],
        "prerequisites": ("{doc}`01_theory` (PC-softmax and its equivalent losses) and {doc}`02_synthetic_mi` "
                          "(classifier readings of MI). Maths: class priors and Bayes' rule; convolutional "
                          "networks and linear probes on frozen features at the level of an introductory "
                          "deep-learning course."),
        "exercises": [
            ("ex-imbalanced-entropy", "The bias of the split",
             "Compute the training label entropy $H(Y)$ of the chapter's MNIST split. How large would the bias "
             "$\\log 10 - H(Y)$ of a softmax $\\log K$ reading be on it, compared with the $\\log 10$ ceiling?",
             "The entropy is the one of the training counts; the bias is a sizeable fraction of the ceiling, which "
             "is why the chapter reads MI with PC-softmax.",
             """import numpy as np
from infocam import information
from infocam.data import load_mnist
from infocam.data.imbalance import mnist_imbalanced

split_ex = mnist_imbalanced(load_mnist(mnist_source, data_root=data_root))
H_split = information.entropy(split_ex.priors)
print(f"training counts {split_ex.train_counts.tolist()}: H(Y) = {H_split:.4f} nats, "
      f"log 10 − H(Y) = {np.log(10) - H_split:.4f} of log 10 = {np.log(10):.4f}")
assert 0 < np.log(10) - H_split < np.log(10)"""),
            ("ex-imbalanced-rarer", "Rare digits ten times rarer",
             "Keep only a tenth of the rare digits' training images. *Predict*: does the gain of PC-softmax over "
             "softmax in mean per-class accuracy grow or shrink? To keep it fast, *observe* with a linear "
             "classifier on the pixels (`torch.nn.Linear` trained by `infocam.train.fit`) on both splits.",
             "The gain grows: with fewer rare examples, softmax's decision boundaries move further into the rare "
             "classes (their prior is smaller), and the prior correction recovers more of them.",
             """import numpy as np
import torch
from infocam.data import load_mnist
from infocam.data.imbalance import mnist_imbalanced
from infocam.losses import get_loss, label_priors
from infocam.train import fit, per_class_accuracy, predict_logits

split_ex = mnist_imbalanced(load_mnist(mnist_source, data_root=data_root))
pixels = lambda images: torch.from_numpy(images.reshape(len(images), -1)).float() / 255  # noqa: E731
rare_digit = np.isin(split_ex.y_train, np.flatnonzero(split_ex.train_counts < split_ex.train_counts.max()))
keep_ex = ~rare_digit | (np.random.default_rng(seed).random(len(rare_digit)) < 0.1)

def train_linear(loss, sel):
    X, y = pixels(split_ex.X_train[sel]), torch.from_numpy(split_ex.y_train[sel])
    torch.manual_seed(seed)
    model = torch.nn.Linear(X.shape[1], 10)
    fit(model, X, y, get_loss(loss, label_priors(y, 10)), epochs=20, batch_size=64, lr=0.001, optimizer="adam",
        seed=seed, desc=loss)
    return model, label_priors(y, 10)

def mean_class_accuracy(trained, tau=0.0):
    model, priors = trained
    f = predict_logits(model, pixels(split_ex.X_test)) - tau * torch.log(priors)
    return float(np.nanmean(per_class_accuracy(f.argmax(1).numpy(), split_ex.y_test, 10)))

linear_ex, gain_ex = {}, {}
for name, sel in (("chapter's split", np.ones(len(keep_ex), bool)), ("rare digits ten times rarer", keep_ex)):
    for loss in ("softmax", "pc_softmax"):
        linear_ex[name, loss] = train_linear(loss, sel)
    gain_ex[name] = mean_class_accuracy(linear_ex[name, "pc_softmax"]) - mean_class_accuracy(linear_ex[name, "softmax"])
print({name: f"{100 * g:+.1f} points" for name, g in gain_ex.items()})
assert gain_ex["rare digits ten times rarer"] > gain_ex["chapter's split"] > 0"""),
            ("ex-imbalanced-posthoc", "Correcting after training",
             "PC-softmax corrects for the prior *while training*. Open question: how much of its gain can you get "
             "*after* training, by predicting $\\arg\\max_y f_y(x) - \\tau \\log p(y)$ with the softmax model of "
             "the previous exercise (rarer split)? Try $\\tau \\in \\{0, 0.5, 1, 1.5, 2\\}$. Which $\\tau$ does "
             "theory suggest (compare {ref}`ex-theory-tau`), and why might the best one differ?",
             "Theory suggests $\\tau = 1$: a softmax model estimates $p(y\\mid x) \\propto p(x\\mid y)p(y)$, and "
             "dividing by $p(y)$ gives the balanced decision rule. The measured curve peaks near $\\tau = 1$; "
             "on a finite sample, an under-fitted model can prefer another $\\tau$.",
             """posthoc_ex = {tau: mean_class_accuracy(linear_ex["rare digits ten times rarer", "softmax"], tau)
              for tau in (0.0, 0.5, 1.0, 1.5, 2.0)}
print({tau: f"{100 * acc:.1f} %" for tau, acc in posthoc_ex.items()})
assert posthoc_ex[1.0] > posthoc_ex[0.0] and max(posthoc_ex, key=posthoc_ex.get) in (0.5, 1.0, 1.5)"""),
        ],
    },
    "04_infocam": {
        "goals": [
            "decompose a GAP network's logit difference over grid cells and compute CAM and infoCAM maps;",
            "turn a map into a box and score it with GT-known Loc, Top-1 Loc and MaxBoxAccV2;",
            "explain what the infoCAM window does, when it helps, and when it grows past the object;",
            "tell a faithful reimplementation (full-padding window) from a corrected one, and measure the difference.",
        ],
        "prerequisites": ("{doc}`01_theory` (PMI differences are logit differences) and {doc}`03_imbalanced` "
                          "(training and probing CNNs). Maths: convolution and global average pooling, "
                          "intersection over union, thresholding and connected components."),
        "exercises": [
            ("ex-infocam-decomposition", "infoCAM averages to a logit difference",
             "For the mean-others variant with window $1$, show that the average of the infoCAM map of class $y$ "
             "over the grid equals $f_y - \\frac{1}{K-1}\\sum_{y' \\ne y} f_{y'}$ minus the same difference of "
             "biases. Check it on an untrained `CNNGAP` with `infocam.cam.class_maps`.",
             "Averaging is linear and global average pooling is an average: the mean of $M_y - "
             "\\frac{1}{K-1}\\sum_{y'\\ne y} M_{y'}$ is the logit difference without the biases — for any weights, "
             "trained or not.",
             """import numpy as np
import torch
from infocam import cam as cam_lib
from infocam.models.cnn_gap import CNNGAP

torch.manual_seed(seed)
net_ex = CNNGAP(num_classes=10, widths=tuple(widths)).eval()

def minus_mean_of_others(v, y):  # v_y − mean over y' ≠ y of v_y', per row
    rows = torch.arange(len(y))
    return v[rows, y] - (v.sum(1) - v[rows, y]) / (v.shape[1] - 1)

with torch.no_grad():
    x_ex = torch.rand(4, 1, canvas, canvas)
    f_ex, feats_ex = net_ex(x_ex), net_ex.features(x_ex)
    y_ex = f_ex.argmax(1)
    maps_ex = cam_lib.class_maps(feats_ex, net_ex.fc.weight, y_ex, variant="mean-others", window=1)
    rhs_ex = minus_mean_of_others(f_ex, y_ex) - minus_mean_of_others(net_ex.fc.bias.expand_as(f_ex), y_ex)
print(f"max |mean_g infoCAM − logit difference| = {float((maps_ex.mean((1, 2)) - rhs_ex).abs().max()):.1e}")
assert torch.allclose(maps_ex.mean((1, 2)), rhs_ex, atol=1e-4)"""),
            ("ex-infocam-window", "A window wider than the object",
             "Take a map that lights up every stroke — the canvas itself, averaged down to a $14\\times14$ grid "
             "as a stand-in for a class map — and sum it over a $k\\times k$ window with `infocam.cam.window_sum` "
             "for $k \\in \\{1, 3, 5, 9, 13\\}$. The digits cover roughly a fifth of the canvas side. *Predict*: "
             "how does box accuracy (MaxBoxAcc at IoU ≥ 0.5) move once the window is wider than the digit? "
             "*Observe* on (up to four hundred of) the chapter's cluttered test canvases.",
             "Once the window is wider than the object, every box grows to the window's size and IoU with the "
             "digit's tight box collapses. A window helps only while it is smaller than the object (here the "
             "stroke map is already compact, so even small windows cost a little); on the $7\\times7$ grid "
             "of a pretrained network a $3\\times3$ window already covers much of a bird.",
             """import numpy as np
import torch
import torch.nn.functional as F
from infocam import cam as cam_lib, wsol
from infocam.data.cluttered import load_cluttered_mnist

test_ex = load_cluttered_mnist(n_train=1, n_val=1, n_test=min(n_test, 400), canvas=canvas, n_clutter=n_clutter,
                               fragment=fragment, seed=seed, source=mnist_source)["test"]
strokes = F.adaptive_avg_pool2d(torch.from_numpy(test_ex.images).float()[:, None] / 255, 14)[:, 0]
boxes_ex, taus_ex = wsol.xywh_to_xyxy(test_ex.boxes), wsol.default_thresholds(threshold_step)
window_acc = {k: wsol.max_box_acc(wsol.iou_curves(wsol.normalize(wsol.upsample(cam_lib.window_sum(strokes, k), (canvas, canvas))),
                                                  boxes_ex, taus_ex)) for k in (1, 3, 5, 9, 13)}
print({k: f"{100 * a:.1f} %" for k, a in window_acc.items()})
assert window_acc[13] < window_acc[9] < window_acc[5] <= window_acc[1]"""),
            ("ex-infocam-faithful", "The faithful window squeezes boxes",
             "The original code applies the window as a *full* convolution (padding $k-1$), so a $14\\times14$ map "
             "grows to $(14+k-1)^2$ cells before it is stretched to the image. Put a single hot cell near the "
             "top-left corner of a $14\\times14$ map. *Predict*: where does its box land in a $224$-pixel image "
             "with the centred window and with the faithful one? *Observe* with `window_sum(..., mode=\"faithful\")`.",
             "The centred window keeps the box around the hot cell; the faithful one shifts it towards the image "
             "centre, because the grown map is squeezed by $h/(h+k-1)$ when it is stretched to the image.",
             """import numpy as np
import torch
from infocam import cam as cam_lib, wsol

hot = torch.zeros(1, 14, 14)
hot[0, 1, 1] = 1.0
centre_ex = {}
for mode in ("same", "faithful"):
    heat_ex = wsol.normalize(wsol.upsample(cam_lib.window_sum(hot, 3, mode), (224, 224)))
    (box_ex,) = wsol.boxes_from_map(heat_ex[0], [0.5])[0]
    centre_ex[mode] = (box_ex[0] + box_ex[2]) / 2
print({m: f"box centre x = {c:.0f} px" for m, c in centre_ex.items()}, "| hot cell centre x = 24 px, image centre 112 px")
assert abs(centre_ex["same"] - 24) < abs(centre_ex["faithful"] - 24)
assert abs(centre_ex["faithful"] - 112) < abs(centre_ex["same"] - 112)"""),
        ],
    },
    "05_trained_wsol": {
        "goals": [
            "fine-tune the last stage of a pretrained network and compare its CAM and infoCAM boxes with a frozen probe's;",
            "use a network-free centre prior as the baseline every localisation map must beat;",
            "choose the threshold τ on held-out images and report scores on images not used for any choice;",
            "name the differences between the paper's evaluation code and the reference evaluator, and measure each.",
        ],
        "prerequisites": ("{doc}`04_infocam` (CAM, infoCAM, boxes and localisation metrics) and {doc}`03_imbalanced` "
                          "(probes on frozen features). Maths: intersection over union, averages of ratios versus "
                          "ratios of totals; fine-tuning with a larger learning rate on the head."),
        "exercises": [
            ("ex-trained-misread", "A perfect localiser against misread boxes",
             "The original code reads Tiny-ImageNet's corner boxes $(x_0, y_0, x_1, y_1)$ as $(x, y, w, h)$. "
             "*Predict*: if a method returned exactly the true box for every validation image, what fraction would "
             "it localise (IoU ≥ 0.5) against the misread boxes? *Observe* with "
             "`infocam.data.tiny_imagenet.as_xywh_misread` and `infocam.wsol.iou`.",
             "Not all of them: the misread box is the true box grown by its own top-left offset, so an object away "
             "from the top-left corner gets a box that is too large, and a sizeable share of perfect boxes fails. "
             "The misreading penalises good localisers and favours boxes that spread towards the bottom-right.",
             """import tempfile
from pathlib import Path

import numpy as np
from infocam import wsol
from infocam.data.tiny_imagenet import as_xywh_misread, find_tiny_imagenet, load_tiny_imagenet, make_fixture

tiny_root_ex = find_tiny_imagenet(data_root) or make_fixture(Path(tempfile.mkdtemp(prefix="infocam-ex-")))
true_boxes_ex = load_tiny_imagenet(tiny_root_ex).boxes
iou_misread = wsol.iou(true_boxes_ex, as_xywh_misread(true_boxes_ex))
print(f"{len(true_boxes_ex)} validation boxes: mean IoU of the true box with its misreading {iou_misread.mean():.3f}; "
      f"a perfect localiser scores {100 * (iou_misread >= 0.5).mean():.1f} % GT-known Loc against them")
assert (iou_misread <= 1 + 1e-12).all() and (iou_misread >= 0.5).mean() < 1"""),
            ("ex-trained-running", "An average of batch accuracies",
             "The original code reports the running average of per-batch accuracies. Take a test set of "
             "`running_batch` × 10 hits followed by 3 misses, so that the last batch holds only the misses. "
             "*Predict* both the overall accuracy and the average of the batch accuracies, then *observe* with "
             "`infocam.wsol.batch_running_average`. When do the two agree?",
             "The overall accuracy is $10B/(10B+3)$, close to one; the average of the batch rates is $10/11$, because "
             "the three-image batch weighs as much as a full one. They agree when every batch has the same size "
             "(or the same accuracy).",
             """import numpy as np
from infocam import wsol

hits_ex = np.r_[np.ones(10 * running_batch), np.zeros(3)]
overall_ex, running_ex = hits_ex.mean(), wsol.batch_running_average(hits_ex, running_batch)
print(f"overall accuracy {overall_ex:.4f}; running average of batch accuracies {running_ex:.4f}")
assert abs(running_ex - 10 / 11) < 1e-12 and abs(overall_ex - 10 * running_batch / (10 * running_batch + 3)) < 1e-12
assert abs(wsol.batch_running_average(hits_ex[: 10 * running_batch], running_batch) - 1.0) < 1e-12"""),
            ("ex-trained-centre", "Where are the objects?",
             "A map that ignores the image — the same centred Gaussian for every image, `infocam.wsol.centre_prior` — "
             "is the chapter's baseline. *Predict*: on Tiny-ImageNet's validation boxes, does the centred Gaussian "
             "localise more images (MaxBoxAcc, IoU ≥ 0.5) than the same Gaussian moved towards a corner? How many "
             "images does the whole-image box alone localise? Open question: what would a dataset have to look like "
             "for the centre prior to fail, and why should a paper report it?",
             "The centred Gaussian localises more, but by less than one might guess: Tiny-ImageNet's boxes are large "
             "(the whole-image box alone reaches $\\mathrm{IoU} \\ge 0.5$ on a good share of images) and centred, because the "
             "images are crops around the object. A dataset of small, off-centre objects would defeat the prior; "
             "without such a baseline a score cannot tell whether a map looks at the object.",
             """import tempfile
from pathlib import Path

import numpy as np
from infocam import wsol
from infocam.data.tiny_imagenet import find_tiny_imagenet, load_tiny_imagenet, make_fixture

tiny_root_ex = find_tiny_imagenet(data_root) or make_fixture(Path(tempfile.mkdtemp(prefix="infocam-ex-")))
prior_boxes_ex = load_tiny_imagenet(tiny_root_ex).boxes[: min(tiny_limit or 10**9, 1000)]
centred_ex = wsol.centre_prior(len(prior_boxes_ex), 64, 64)
gy, gx = np.mgrid[0:64, 0:64]
corner_ex = np.exp(-((gy - 12) ** 2 + (gx - 12) ** 2) / (2 * 16.0**2))[None].repeat(len(prior_boxes_ex), 0)  # same width
taus_ex = wsol.default_thresholds(threshold_step)
prior_acc = {name: wsol.max_box_acc(wsol.iou_curves(maps, prior_boxes_ex, taus_ex))
             for name, maps in (("centred", centred_ex), ("corner", corner_ex))}
whole_image = float((wsol.iou(np.array([0, 0, 63, 63]), prior_boxes_ex) >= 0.5).mean())
print({name: f"{100 * a:.1f} % MaxBoxAcc" for name, a in prior_acc.items()},
      f"| the whole-image box alone: {100 * whole_image:.1f} % (of {len(prior_boxes_ex)} images)")
assert prior_acc["centred"] > prior_acc["corner"]"""),
        ],
    },
}


def _md(cell_id: str, source: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": source.splitlines(keepends=True)}


def _code(cell_id: str, source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": cell_id, "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}


def course_cells(chapter: str) -> tuple[list[dict], list[dict]]:
    """(cells after the title, cells at the end) of one chapter."""
    spec = CHAPTERS[chapter]
    top = [_md(f"{PREFIX}goals", goals(spec["goals"], spec["prerequisites"]))]
    end = [_md(f"{PREFIX}exercises", INTRO)]
    for i, (label, title, text, sol_text, sol_code) in enumerate(spec["exercises"], 1):
        end.append(_md(f"{PREFIX}ex{i}", exercise(label, title, text)))
        end.append(_md(f"{PREFIX}sol{i}-start", solution_start(label, sol_text)))
        end.append(_code(f"{PREFIX}sol{i}", sol_code))
        end.append(_md(f"{PREFIX}sol{i}-end", SOLUTION_END))
    return top, end


def place(chapter: str, book: Path = BOOK) -> Path:
    """Re-read the chapter, replace the course cells, write it back at once."""
    path = book / f"{chapter}.ipynb"
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if not str(c.get("id", "")).startswith(PREFIX)]
    top, end = course_cells(chapter)
    nb["cells"] = cells[:1] + top + cells[1:] + end
    with open(path, "w", encoding="utf-8") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return path


if __name__ == "__main__":
    for name in sys.argv[1:] or list(CHAPTERS):
        print(place(name))
