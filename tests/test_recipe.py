"""infocam.recipe and ``infocam train``: the authors' recipes, one-line refusals, seeded runs, resume, lock, failures."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import yaml

from infocam import recipe as R
from infocam import train as train_engine
from infocam.cli import main
from infocam.paths import DataError
from tests.test_cub import make_tiny_cub

PAPER = {"vgg16_gap-cub", "vgg16_gap_adl-cub", "resnet50-cub", "resnet50_adl-cub", "vgg16_gap-tiny_imagenet",
         "vgg16_gap_adl-tiny_imagenet", "resnet50-tiny_imagenet", "resnet50_adl-tiny_imagenet"}
# the authors' batch sizes (info_cam/*/scripts/run_*.sh of their repository)
AUTHORS_BATCH = {("vgg16_gap", "cub"): 30, ("resnet50", "cub"): 128, ("vgg16_gap", "tiny_imagenet"): 1280,
                 ("resnet50", "tiny_imagenet"): 640}


def test_the_papers_recipes_ship_with_the_authors_settings():
    shipped = R.shipped_recipes()
    assert PAPER | {"lite0-cub-cpu"} <= set(shipped)
    for name in PAPER:
        r = R.load_recipe(name)
        t, ds, net = r["train"], r["dataset"], r["backbone"]["name"]
        assert (t["epochs"], t["optimizer"], t["nesterov"], t["head_lr_mult"], t["momentum"]) == (200, "sgd", True, 10, 0.9)
        assert (t["schedule"], t["step_size"], t["gamma"], t["weight_decay"]) == ("step", 60, 0.1, 1e-4)
        assert t["lr"] == (0.001 if name.startswith("vgg") else 0.01)
        assert t["batch_size"] == t["reference_batch"] == AUTHORS_BATCH[(net, ds["name"])]
        assert t["head_layers"] == (["conv6", "fc"] if net == "vgg16_gap" else ["features.4", "fc"])  # layer4 + fc
        assert r["adl"]["enabled"] == ("_adl" in name)
        assert r["adl"]["gamma"] == (0.8 if name.startswith("vgg") else 0.9) and r["adl"]["drop_rate"] == 0.75
        assert (ds["image_size"], ds["resize"]) == ((224, 256) if ds["name"] == "cub" else (64, 64))
        assert (ds["crop"], ds["test_transform"], r["eval"]["epoch"]) == ("crop", "resize", "last")
        assert r["precision"] == "auto" and t["num_workers"] is None
        text = R.resolve_recipe_path(name).read_text()
        assert "scripts/run_" in text and "best_on_test" in text  # the source and the named differences


@pytest.mark.parametrize("name", sorted(PAPER | {"lite0-cub-cpu"}))
def test_every_shipped_recipe_dry_runs_one_batch(name):
    r = R.load_recipe(name, ["device=cpu"])
    out = R.dry_run(r, batch_size=2)
    assert out["loss"] > 0 and out["trainable"] > 0 and out["precision"] == "fp32"
    assert out["dataset"] == r["dataset"]["name"]
    size = r["dataset"]["image_size"]
    assert out["image"] == [3, size, size]
    if r["backbone"]["name"] in ("vgg16_gap", "resnet50"):
        assert out["maps"][1:] == [size // 16, size // 16]  # 14×14 at 224 px, 4×4 at 64 px


def test_dry_run_is_seeded():
    r = R.load_recipe("resnet50-tiny_imagenet", ["device=cpu", "backbone.pretrained=none"])
    assert R.dry_run(r)["loss"] == R.dry_run(r)["loss"]


# Values a new user tried that used to be accepted, and the classic mistakes: one line each, before any work.
BAD = [
    (["train.lr=.nan"], r"train.lr = nan is not allowed \(numbers must be finite"),
    (["train.lr=.inf"], r"train.lr = inf is not allowed \(numbers must be finite"),
    (["train.lr=0"], r"train.lr = 0 is not allowed.*allowed: number > 0"),
    (["train.momentum=-0.9"], r"train.momentum = -0.9 is not allowed.*allowed: number ≥ 0, < 1"),
    (["dataset.image_size=0"], r"dataset.image_size = 0 is not allowed.*integer ≥ 16"),
    (["eval.batch_size=0"], r"eval.batch_size = 0 is not allowed.*integer ≥ 1"),
    (["train.num_workers=-2"], r"train.num_workers = -2 is not allowed"),
    (["dataset.classes=0"], r"dataset.classes = 0 is not allowed.*null \(every class\) or an integer ≥ 1"),
    (["train.epochs=ten"], r"train.epochs = 'ten' is not allowed.*integer ≥ 1"),
    (["train.batch_size=2.5"], r"train.batch_size = 2.5 is not allowed"),
    (["adl.enabled=yes please"], r"adl.enabled = 'yes please' is not allowed.*boolean"),
    (["adl.drop_rate=1.5"], r"adl.drop_rate = 1.5 is not allowed.*≤ 1"),
    (["train.learning_rate=0.1"], r"unknown key 'train.learning_rate'.*did you mean 'lr'"),
    (["trian.epochs=1"], r"unknown key 'trian'.*did you mean 'train'"),
    (["dataset.root=/tmp"], r"dataset.root is now the top-level data_root"),
    (["backbone.name=resnet51"], r"backbone.name = 'resnet51'.*did you mean 'resnet50'"),
    (["precision=fp61"], r"precision = 'fp61'.*did you mean 'fp16'"),
    (["data_root=/no/such/folder"], r"data_root = '/no/such/folder' is not allowed \(folder '/no/such/folder' does not exist\)"),
    (["backbone.name=inception_v3", "adl.enabled=true"], r"adl.enabled needs backbone vgg16_gap or resnet50"),
    (["backbone.trainable_from=stage9"], r"backbone.trainable_from = 'stage9' is not allowed.*stage7, head"),
    (["dataset.resize=128"], r"dataset.resize \(128\) must be >= dataset.image_size \(224\)"),
    (["dataset.name=tiny_imagenet", "dataset.classes=5"], r"dataset.classes .* not supported for tiny_imagenet"),
    (["dataset.name=cubb"], r"dataset.name = .cubb.*did you mean .cub."),
    (["train.lr_rule=refuse", "train.batch_size=64"], r"global batch 64 × 1 process\(es\) = 64 differs from "
                                                      r"train.reference_batch 128"),
    (["train.head_layers=[]"], r"train.head_layers = \[\] is not allowed"),
    (["train"], r"-s/--set expects key=value"),
]


@pytest.mark.parametrize("override, match", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_recipe_values_are_one_clear_error(override, match):
    with pytest.raises(R.RecipeError, match=match):
        R.load_recipe("resnet50-cub", override)


@pytest.mark.parametrize("override, match", BAD[:8], ids=[" ".join(o) for o, _ in BAD[:8]])
def test_infocam_train_refuses_bad_values_in_one_line_with_exit_2(override, match, capsys, tmp_path):
    args = ["train", "resnet50-cub", "-s", f"output={tmp_path / 'out'}"] + [a for o in override for a in ("-s", o)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("infocam: error: ")
    assert not (tmp_path / "out").exists()  # nothing was created: refused before any work


@pytest.mark.parametrize("text, match", [("", "is empty: a recipe is a YAML mapping"),
                                         ("# only a comment\n", "is empty"),
                                         ("- 1\n- 2\n", "must be a YAML mapping .* not a list"),
                                         ("just words\n", "must be a YAML mapping .* not a str"),
                                         ("train: [1, 2\n", "not valid YAML")])
def test_empty_or_non_mapping_recipe_files_are_refused(tmp_path, capsys, text, match):
    path = tmp_path / "r.yml"
    path.write_text(text)
    with pytest.raises(R.RecipeError, match=match):
        R.load_recipe(path)
    assert main(["train", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_and_fp16_on_cpu_are_refused():
    with pytest.raises(R.RecipeError, match="asked for CUDA, but this machine has none"):
        R.load_recipe("resnet50-cub", ["device=cuda"])
    with pytest.raises(R.RecipeError, match="'fp16' needs a GPU"):
        R.load_recipe("resnet50-cub", ["device=cpu", "precision=fp16"])


def test_unknown_recipe_name():
    with pytest.raises(R.RecipeError, match="did you mean 'resnet50-cub'"):
        R.resolve_recipe_path("resnet50-cubb")


def test_gpu_defaults_and_the_learning_rate_rule(monkeypatch):
    r = R.load_recipe("resnet50-cub", ["device=cpu"])
    cpu = R.runtime_settings(r, torch.device("cpu"), 1)
    assert (cpu["precision"], cpu["channels_last"], cpu["global_batch"], cpu["lr"]) == ("fp32", False, 128, 0.01)
    assert cpu["num_workers"] >= 1
    assert R.precision_for(r, torch.device("cuda")) == "bf16"
    # 4 processes at the authors' per-GPU batch: global 512 = 4 × 128, lr scaled linearly
    assert R.effective_lr(r, 4) == pytest.approx(0.04) and R.global_batch(r, 4) == 512
    # their global batch over 4 GPUs keeps their lr
    assert R.effective_lr(R.load_recipe("resnet50-cub", ["device=cpu", "train.batch_size=32"]), 4) == pytest.approx(0.01)
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert R.load_recipe("resnet50-cub", ["device=cpu", "train.lr_rule=refuse", "train.batch_size=32"])


def test_weights_of_another_architecture_are_refused(tmp_path):
    wrong = tmp_path / "lenet.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), wrong)
    r = R.load_recipe("vgg16_gap-cub", ["device=cpu", f"backbone.weights_path={wrong}"])
    with pytest.raises(DataError, match="do not fit vgg16.*another architecture.*vgg16-397923af.pth"):
        R.build_network(r, 200)


def test_authors_test_transform_is_a_named_option():
    r = R.load_recipe("resnet50-cub", ["device=cpu", "dataset.test_transform=resize_center_crop"])
    _, test = R.transforms_for(r)
    image, boxes = test(torch.zeros(3, 300, 400, dtype=torch.uint8), torch.tensor([[0.0, 0.0, 400.0, 300.0]]))
    assert image.shape == (3, 224, 224)
    assert boxes.tolist() == [[0.0, 0.0, 224.0, 224.0]]  # 256×256 then the central 224: the box is clipped


def _tiny_recipe(tmp_path, data_root, name="tiny", **train):
    r = {"name": name, "data_root": str(data_root),
         "dataset": {"name": "cub", "image_size": 32, "resize": 40},
         "backbone": {"name": "efficientnet_lite0", "trainable_from": "head"},
         "train": {"epochs": 2, "batch_size": 8, "lr": 0.01, "schedule": "cosine", "num_workers": 0, **train},
         "eval": {"batch_size": 16}, "device": "cpu", "output": str(tmp_path / "out")}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(r))
    return path


def _weights(path):
    return torch.load(path, weights_only=False)


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_infocam_train_runs_writes_results_and_resumes(tmp_path, capsys):
    make_tiny_cub(tmp_path, num_classes=3, n_train=6, n_test=4)
    path = _tiny_recipe(tmp_path, tmp_path)
    assert main(["train", str(path)]) == 0
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "cub"  # the dataset key, never sniffed from the recipe's name
    assert len(results["train_loss"]) == 2 and 0 <= results["test_top1"] <= 1
    assert (results["global_batch"], results["batch_size_per_process"], results["world_size"]) == (8, 8, 1)
    assert results["precision"] == "fp32" and results["epoch_reported"] == 2
    assert results["selection_images"] == results["report_images"] == 6
    methods = results["localisation"]["methods"]
    assert {"cam", "infocam-mean-others-k4", "infocam-least-likely-k1", "infocam-mean-others-k4-faithful",
            "centre"} <= set(methods)  # the catalogue at the paper's CUB window, keyed by method id
    for r in methods.values():
        assert 0 <= r["top1_loc"] <= r["gt_known_loc"] <= 1 and 0 <= r["maxboxacc_v2"] <= 1 and 0 <= r["tau"] < 1
        assert 0 <= r["original_top1_loc"] <= r["original_gt_known_loc"] <= 1
    assert results["train_images"] == 18 and results["test_images"] == 12 and results["num_classes"] == 3
    assert {"git_commit", "torch", "python"} <= set(results["provenance"])
    assert results["device"].startswith("cpu")
    assert [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert (out / "last.pt").is_file() and (out / "model.pt").is_file()
    assert not (out / ".lock").exists() and not (out / "failed.txt").exists()
    # resuming a finished run trains nothing and gives the same numbers; keys that do not change the
    # numbers (eval batch, device name, workers) do not block it
    assert main(["train", str(path), "-s", "eval.batch_size=5", "-s", "device=auto", "-s", "train.num_workers=1"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["train_loss"] == results["train_loss"] and again["test_top1"] == results["test_top1"]
    # a key that changes the numbers: one line naming it; --force-resume takes the checkpoint anyway
    capsys.readouterr()
    assert main(["train", str(path), "-s", "train.lr=0.05"]) == 2
    err = capsys.readouterr().err
    assert "belongs to another run (train.lr: checkpoint 0.01 vs now 0.05" in err and "--force-resume" in err
    assert err.count("\n") == 1
    assert main(["train", str(path), "-s", "train.lr=0.05", "--force-resume"]) == 0
    # a dataset folder missing a file: one clear error naming it, and the folder is marked failed
    cub_paths = sorted((tmp_path / "CUB_200_2011" / "images").rglob("*.jpg"))
    cub_paths[0].unlink()
    assert main(["train", str(path), "--fresh"]) == 2
    assert cub_paths[0].name in capsys.readouterr().err
    assert (out / "failed.txt").is_file() and not (out / "model.pt").exists()


@pytest.mark.parametrize("network", [[], ["backbone.name=resnet50", "adl.enabled=true", "backbone.pretrained=none",
                                      "train.epochs=1", "train.head_layers=[features.4, fc]"]],
                         ids=["lite0-new-head", "resnet50-adl-random"])
def test_two_runs_of_one_recipe_give_identical_weights(tmp_path, network):
    """Seeding before the network is built: the new head, ADL and a random network start alike in every run."""
    make_tiny_cub(tmp_path, num_classes=3, n_train=6, n_test=4)
    models = []
    for name in ("a", "b"):
        path = _tiny_recipe(tmp_path, tmp_path, name=name, epochs=2)
        sets = [f"output={tmp_path / name}", "train.num_workers=2", *network]
        assert main(["train", str(path)] + [a for s in sets for a in ("-s", s)]) == 0
        models.append(_weights(tmp_path / name / "model.pt"))
    assert _same(*models)
    losses = [json.loads((tmp_path / n / "results.json").read_text())["train_loss"] for n in ("a", "b")]
    assert losses[0] == losses[1]
    print(f"train loss of both runs: {losses[0]}")


def test_stop_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """A stop request (SIGTERM's path) after 2 batches of epoch 2 → checkpoint, exit 143; resuming ends bit-equal."""
    make_tiny_cub(tmp_path, num_classes=3, n_train=8, n_test=2)
    path = _tiny_recipe(tmp_path, tmp_path, epochs=3, batch_size=4, drop_last=False)
    assert main(["train", str(path), "-s", f"output={tmp_path / 'full'}"]) == 0
    # 6 batches per epoch (24 images / 4); n counts the batches trained so far: epoch 2, batch 2
    monkeypatch.setattr(train_engine, "_stop_requested", lambda size, n, dev: n == 6 + 2)
    monkeypatch.setenv("INFOCAM_PROGRESS", "0")
    capsys.readouterr()
    assert main(["train", str(path)]) == 143
    err = capsys.readouterr().err
    assert "stopped in epoch 2 after 2 batches" in err and err.count("\n") == 1
    state = torch.load(tmp_path / "out" / "last.pt", weights_only=False)
    assert (state["epoch"], state["step"]) == (1, 2)
    assert not (tmp_path / "out" / "model.pt").exists() and not (tmp_path / "out" / "failed.txt").exists()
    monkeypatch.undo()
    assert main(["train", str(path)]) == 0
    assert _same(_weights(tmp_path / "out" / "model.pt"), _weights(tmp_path / "full" / "model.pt"))
    full, resumed = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("full", "out"))
    assert full["train_loss"] == resumed["train_loss"]
    assert [json.loads(t)["epoch"] for t in (tmp_path / "out" / "log.jsonl").read_text().splitlines()] == [1, 2, 3]


@pytest.mark.slow  # a training process stopped by a signal
def test_a_real_sigterm_checkpoints_exits_143_and_the_same_command_resumes_bit_equal(tmp_path):
    """Kill (SIGTERM, as a scheduler's preemption) → resume through the real command = an uninterrupted run."""
    make_tiny_cub(tmp_path, num_classes=3, n_train=8, n_test=2)
    path = _tiny_recipe(tmp_path, tmp_path, epochs=40, batch_size=4)
    env = {**os.environ, "INFOCAM_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "infocam", "train", str(path)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("epoch 1/"):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().count("\n") == 0 and "SIGTERM: stopped " in err
    out = tmp_path / "out"
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] < 40
    assert not (out / ".lock").exists() and not (out / "model.pt").exists()
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    full = subprocess.run(command + ["-s", f"output={tmp_path / 'full'}"], env=env, capture_output=True)
    assert full.returncode == 0
    assert _same(_weights(out / "model.pt"), _weights(tmp_path / "full" / "model.pt"))


def test_cudnn_autotuning_unless_determinism_is_asked_for():
    from infocam.recipe.runner import _configure_backends

    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        _configure_backends(torch.device("cuda"), R.load_recipe("resnet50-cub", ["device=cpu"]))
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        _configure_backends(torch.device("cuda"), R.load_recipe("resnet50-cub", ["device=cpu",
                                                                                 "train.deterministic=true"]))
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before


def test_one_live_run_per_output_folder(tmp_path, capsys):
    from infocam.runs import _owner

    make_tiny_cub(tmp_path, num_classes=3, n_train=6, n_test=4)
    path = _tiny_recipe(tmp_path, tmp_path, epochs=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text(json.dumps(_owner()))  # this live process holds it
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"in use by a live infocam train (pid {os.getpid()}" in err and err.count("\n") == 1
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": _owner()["host"], "start": None}))
    assert main(["train", str(path)]) == 0
    assert f"swept the stale lock of a dead run (pid {dead.pid}" in capsys.readouterr().out
    assert not (out / ".lock").exists()


def test_a_diverging_run_is_marked_failed_and_leaves_no_model(tmp_path, monkeypatch, capsys):
    import torch.nn.functional as F

    make_tiny_cub(tmp_path, num_classes=3, n_train=6, n_test=4)
    path = _tiny_recipe(tmp_path, tmp_path)
    real, calls = F.cross_entropy, []

    def diverging(logits, y):  # finite in epoch 1 (2 batches of 8 of the 18 images), NaN from epoch 2 on
        calls.append(1)
        return real(logits, y) * (1.0 if len(calls) <= 2 else float("nan"))
    monkeypatch.setattr(F, "cross_entropy", diverging)
    monkeypatch.setenv("INFOCAM_PROGRESS", "0")
    assert main(["train", str(path)]) == 1
    err = capsys.readouterr().err
    assert "training loss is nan after epoch 2: training diverged; lower train.lr" in err and err.count("\n") == 1
    out = tmp_path / "out"
    assert "diverged" in (out / "failed.txt").read_text() and not (out / "model.pt").exists()
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] == 1  # the last epoch with a finite loss


def test_a_failure_after_training_leaves_no_model(tmp_path, monkeypatch):
    make_tiny_cub(tmp_path, num_classes=3, n_train=6, n_test=4)
    path = _tiny_recipe(tmp_path, tmp_path, epochs=1)

    def broken(*args, **kwargs):
        raise RuntimeError("scoring broke")
    monkeypatch.setattr("infocam.recipe.runner.localisation", broken)
    with pytest.raises(RuntimeError, match="scoring broke"):
        main(["train", str(path)])
    out = tmp_path / "out"
    assert "RuntimeError: scoring broke" in (out / "failed.txt").read_text()
    assert not (out / "model.pt").exists() and not (out / "results.json").exists() and not (out / ".lock").exists()


def test_best_epoch_on_test_is_the_authors_protocol(tmp_path):
    make_tiny_cub(tmp_path, num_classes=3, n_train=6, n_test=4)
    path = _tiny_recipe(tmp_path, tmp_path, epochs=3)
    assert main(["train", str(path), "-s", "eval.epoch=best_on_test"]) == 0
    out = tmp_path / "out"
    log = [json.loads(t) for t in (out / "log.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())
    best = max(range(3), key=lambda i: (log[i]["test_top1"], -i))
    assert results["epoch_rule"] == "best_on_test" and results["epoch_reported"] == best + 1
    assert results["test_top1"] == pytest.approx(log[best]["test_top1"])


def test_localisation_finds_the_box_a_perfect_map_marks():
    class Bright(torch.utils.data.Dataset):
        """32×32 images that are 1 inside their box and 0 elsewhere, all of class 0."""

        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.items = []
            for _ in range(8):
                x0, y0 = (int(v) for v in torch.randint(0, 12, (2,), generator=g))
                x1, y1 = x0 + int(torch.randint(8, 20, (), generator=g)), y0 + int(torch.randint(8, 20, (), generator=g))
                img = torch.zeros(1, 32, 32)
                img[:, y0:y1, x0:x1] = 1
                self.items.append((img, torch.tensor(0), torch.tensor([x0, y0, x1, y1], dtype=torch.float32)))

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    class MapNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Identity()
            self.fc = torch.nn.Linear(1, 2)
            with torch.no_grad():
                self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
                self.fc.bias.zero_()

    out = R.localisation(MapNet(), Bright(), torch.device("cpu"), batch_size=4)
    assert out["test_top1"] == 1.0 and out["report_images"] == 4
    cam = out["localisation"]["methods"]["cam"]
    assert cam["gt_known_loc"] == 1.0 and cam["top1_loc"] == 1.0 and cam["original_gt_known_loc"] == 1.0
    assert out["comparison"]["cam"] == 1.0
