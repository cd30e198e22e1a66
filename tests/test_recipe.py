"""infocam.recipe and ``infocam train``: shipped recipes dry-run, bad recipes are one clear error, runs resume."""

import json

import pytest
import torch
import yaml

from infocam import recipe as R
from infocam.cli import main
from infocam.paths import DataError
from tests.test_cub import make_tiny_cub

PAPER = {"vgg16_gap-cub", "vgg16_gap_adl-cub", "resnet50-cub", "resnet50_adl-cub", "vgg16_gap-tiny_imagenet",
         "vgg16_gap_adl-tiny_imagenet", "resnet50-tiny_imagenet", "resnet50_adl-tiny_imagenet"}


def test_the_papers_recipes_ship_with_the_papers_settings():
    shipped = R.shipped_recipes()
    assert PAPER | {"lite0-cub-cpu"} <= set(shipped)
    for name in PAPER:
        r = R.load_recipe(name)
        t = r["train"]
        assert (t["epochs"], t["optimizer"], t["nesterov"], t["head_lr_mult"]) == (200, "sgd", True, 10)
        assert (t["schedule"], t["step_size"], t["gamma"], t["weight_decay"]) == ("step", 60, 0.1, 1e-4)
        assert t["lr"] == (0.001 if name.startswith("vgg") else 0.01)
        assert r["adl"]["enabled"] == ("_adl" in name)
        assert r["adl"]["gamma"] == (0.8 if name.startswith("vgg") else 0.9) and r["adl"]["drop_rate"] == 0.75
        assert r["dataset"]["image_size"] == (224 if name.endswith("cub") else 64)


@pytest.mark.parametrize("name", sorted(PAPER | {"lite0-cub-cpu"}))
def test_every_shipped_recipe_dry_runs_one_batch(name):
    r = R.load_recipe(name, ["device=cpu"])
    out = R.dry_run(r, batch_size=2)
    assert out["loss"] > 0 and out["trainable"] > 0
    size = r["dataset"]["image_size"]
    assert out["image"] == [3, size, size]
    if r["backbone"]["name"] in ("vgg16_gap", "resnet50"):
        assert out["maps"][1:] == [size // 16, size // 16]  # 14×14 at 224 px, 4×4 at 64 px


@pytest.mark.parametrize("override, match", [
    (["train.learning_rate=0.1"], r"unknown key 'train.learning_rate'.*did you mean 'lr'"),
    (["trian.epochs=1"], r"unknown key 'trian'.*did you mean 'train'"),
    (["backbone.name=resnet51"], r"backbone.name = 'resnet51' is not one of .*did you mean 'resnet50'"),
    (["train.epochs=ten"], r"train.epochs must be a number"),
    (["adl.enabled=yes please"], r"adl.enabled must be true or false"),
    (["backbone.name=inception_v3", "adl.enabled=true"], r"adl.enabled needs backbone vgg16_gap or resnet50"),
    (["backbone.trainable_from=stage9"], r"not a stage of EfficientNet-Lite0"),
])
def test_bad_recipe_values_are_one_clear_error(override, match):
    with pytest.raises(R.RecipeError, match=match):
        R.load_recipe("resnet50-cub", override)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_and_world_size_not_dividing_the_batch(monkeypatch):
    with pytest.raises(R.RecipeError, match="asked for CUDA, but this machine has none"):
        R.load_recipe("resnet50-cub", ["device=cuda"])
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(R.RecipeError, match="batch_size 32 is not divisible by the world size 3"):
        R.load_recipe("resnet50-cub", ["device=cpu"])


def test_unknown_recipe_name_and_bad_yaml(tmp_path):
    with pytest.raises(R.RecipeError, match="did you mean 'resnet50-cub'"):
        R.resolve_recipe_path("resnet50-cubb")
    bad = tmp_path / "bad.yml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(R.RecipeError, match="not valid YAML"):
        R.load_recipe(bad)


def test_weights_of_another_architecture_are_refused(tmp_path):
    wrong = tmp_path / "lenet.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), wrong)
    r = R.load_recipe("vgg16_gap-cub", ["device=cpu", f"backbone.weights_path={wrong}"])
    with pytest.raises(DataError, match="do not fit vgg16.*another architecture.*vgg16-397923af.pth"):
        R.build_network(r, 200)


def _tiny_recipe(tmp_path, cub_root, **train):
    r = {"name": "tiny", "dataset": {"name": "cub", "root": str(cub_root), "image_size": 32, "resize": 40},
         "backbone": {"name": "efficientnet_lite0", "trainable_from": "head"},
         "train": {"epochs": 2, "batch_size": 8, "lr": 0.01, "schedule": "cosine", "num_workers": 0, **train},
         "eval": {"batch_size": 16}, "device": "cpu", "output": str(tmp_path / "out")}
    path = tmp_path / "tiny.yml"
    path.write_text(yaml.safe_dump(r))
    return path


def test_infocam_train_runs_writes_results_and_resumes(tmp_path, capsys):
    cub = make_tiny_cub(tmp_path, num_classes=3, n_train=6, n_test=4)
    path = _tiny_recipe(tmp_path, cub)
    assert main(["train", str(path)]) == 0
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert len(results["train_loss"]) == 2 and 0 <= results["test_top1"] <= 1
    assert results["selection_images"] == results["report_images"] == 6
    for method in ("cam", "infocam"):
        r = results[method]
        assert 0 <= r["top1_loc"] <= r["gt_known_loc"] <= 1 and 0 <= r["maxboxacc_v2"] <= 1 and 0 <= r["tau"] < 1
        assert 0 <= r["original_top1_loc"] <= r["original_gt_known_loc"] <= 1
    assert results["train_images"] == 18 and results["test_images"] == 12 and results["num_classes"] == 3
    assert {"git_commit", "torch", "python"} <= set(results["provenance"])
    assert results["device"].startswith("cpu")
    assert [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert (out / "last.pt").is_file() and (out / "model.pt").is_file()
    # resuming a finished run trains nothing and gives the same numbers
    assert main(["train", str(path)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["train_loss"] == results["train_loss"] and again["test_top1"] == results["test_top1"]
    # the same output folder with another recipe: one clear error before training
    capsys.readouterr()
    assert main(["train", str(path), "-s", "train.lr=0.05"]) == 2
    assert "belongs to another run" in capsys.readouterr().err
    # a dataset folder missing a file: one clear error naming it
    cub_paths = sorted((cub / "images").rglob("*.jpg"))
    cub_paths[0].unlink()
    assert main(["train", str(path), "--fresh"]) == 2
    assert cub_paths[0].name in capsys.readouterr().err


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
    assert out["cam"]["gt_known_loc"] == 1.0 and out["cam"]["top1_loc"] == 1.0
    assert out["cam"]["original_gt_known_loc"] == 1.0
