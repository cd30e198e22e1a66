"""Tests of the frozen-backbone feature cache (infocam.features): runtimes agree, cache keys, cuts, errors."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from infocam import features
from infocam.device import DeviceError
from infocam.features import FrozenRunner, extract_features, feature_cache_path, prefetched_batches
from infocam.models.backbones import efficientnet_lite0, imagenet_transform, split_lite0
from infocam.paths import DataError

from tests.conftest import share_onnx_exports

SIZE = 64  # Lite0 at 64 px: (1280, 2, 2) maps, fast enough for tests
# ONNX Runtime vs eager PyTorch on the final maps (values 0..6): measured ~3e-5 at 224 px.
ONNX_ATOL = 1e-3


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory, onnx_exports):
    """One cache for the module, with the run's shared ONNX exports (each made once); progress bars off."""
    cache = tmp_path_factory.mktemp("cache")
    share_onnx_exports(cache, onnx_exports)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFOCAM_CACHE", str(cache))
        mp.setenv("INFOCAM_PROGRESS", "0")
        yield


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    """Real photos (scikit-image) as JPEGs, one of them greyscale (as some Tiny-ImageNet images are)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, name in enumerate(["chelsea", "coffee", "astronaut", "rocket", "camera"]):
        path = folder / f"{i}_{name}.jpg"
        Image.fromarray(getattr(data, name)()).save(path, quality=90)
        paths.append(path)
    assert Image.open(paths[-1]).mode == "L"
    return paths


def _batch(paths, size=SIZE):
    return next(prefetched_batches(paths, imagenet_transform(size), len(paths)))


@pytest.mark.parametrize("cut", [None, "stage6"])
def test_onnx_runtime_agrees_with_eager_pytorch(photos, cut):
    x = _batch(photos)
    outputs = (cut or "maps",)
    onnx = FrozenRunner(size=SIZE, outputs=outputs, runtime="onnxruntime")
    eager = FrozenRunner(size=SIZE, outputs=outputs, runtime="torch")
    (a,), (b,) = onnx(x), eager(x)
    assert a.shape == b.shape == ((5, 1280, 2, 2) if cut is None else (5, 192, 2, 2))
    assert b.max() > 1.0  # real activations, not zeros
    np.testing.assert_allclose(a, b, atol=ONNX_ATOL, rtol=0)
    assert features.onnx_path(onnx.net, "efficientnet_lite0", SIZE, outputs).is_file()


def test_auto_runtime_is_onnx_on_cpu_and_keys_the_cache(photos):
    assert features.resolve_runtime("auto", "cpu") == "onnxruntime"
    onnx_file = feature_cache_path("efficientnet_lite0", photos, size=SIZE, spatial=True)
    torch_file = feature_cache_path("efficientnet_lite0", photos, size=SIZE, spatial=True, runtime="torch")
    assert onnx_file != torch_file, "the runtime must be part of the cache key"
    assert features.runtime_tag("torch") != features.runtime_tag("onnxruntime")
    a = extract_features("efficientnet_lite0", photos, size=SIZE, spatial=True)
    b = extract_features("efficientnet_lite0", photos, size=SIZE, spatial=True, runtime="torch")
    assert onnx_file.is_file() and torch_file.is_file()
    np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=1e-2)  # float16 storage


def test_cut_activations_feed_the_trainable_part(photos):
    acts = extract_features("efficientnet_lite0", photos, size=SIZE, cut="stage6")
    assert acts.shape == (5, 192, 2, 2) and acts.dtype == np.float16
    path = feature_cache_path("efficientnet_lite0", photos, size=SIZE, cut="stage6")
    assert path.is_file()
    model = efficientnet_lite0(image_size=SIZE)
    _, trainable = split_lite0(model, trainable_from="stage7")
    x = _batch(photos)
    with torch.no_grad():
        logits = trainable.eval()(torch.from_numpy(acts.astype(np.float32)))
        np.testing.assert_allclose(logits, model(x), atol=0.05)  # float16 activations
    np.save(path, np.zeros_like(acts))  # a second call reads the cache, not the images
    assert not extract_features("efficientnet_lite0", photos, size=SIZE, cut="stage6").any()
    memmap = extract_features("efficientnet_lite0", photos, size=SIZE, cut="stage6", mmap=True)
    assert isinstance(memmap, np.memmap) and not memmap.flags.writeable


def test_one_pass_fills_maps_pooled_and_cut_caches(photos, monkeypatch):
    files = features.cache_features("efficientnet_lite0", photos, kinds=("spatial", "stage6"), size=SIZE,
                                    cache_key="warm")
    assert set(files) == {"spatial", "pooled", "stage6"} and all(p.is_file() for p in files.values())
    runner = FrozenRunner(size=SIZE, outputs=("stage6", "maps"))
    acts, maps = runner(_batch(photos))
    np.testing.assert_array_equal(np.load(files["stage6"]), acts.astype(np.float16))
    np.testing.assert_array_equal(np.load(files["spatial"]), maps.astype(np.float16))
    np.testing.assert_allclose(np.load(files["pooled"]), maps.mean(axis=(2, 3)), rtol=1e-6)

    def no_second_pass(*args, **kwargs):
        raise AssertionError("everything is cached: no forward pass")

    monkeypatch.setattr(features, "_compute", no_second_pass)
    assert features.cache_features("efficientnet_lite0", photos, kinds=("stage6", "spatial"), size=SIZE,
                                   cache_key="warm") == files
    cut = extract_features("efficientnet_lite0", photos, size=SIZE, cut="stage6", cache_key="warm")
    np.testing.assert_array_equal(cut, acts.astype(np.float16))


def test_two_processes_asking_at_once_extract_once(photos, monkeypatch):
    """A chapter reaching its features while `infocam features` extracts them waits and reads them."""
    calls = []

    def slow_compute(backbone, paths, size, crop, missing, **kwargs):
        calls.append(sorted(missing))
        time.sleep(0.3)
        for path in missing.values():
            np.save(path, np.zeros(1))

    monkeypatch.setattr(features, "_compute", slow_compute)
    ask = lambda: features.cache_features("efficientnet_lite0", photos, kinds=("spatial",), size=SIZE, cache_key="race")  # noqa: E731
    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [["pooled", "spatial"]]


def test_pooled_features_are_the_mean_of_the_maps_and_head_gives_logits(photos):
    pooled = extract_features("efficientnet_lite0", photos, size=SIZE, runtime="torch", use_cache=False)
    model = efficientnet_lite0(image_size=SIZE)
    with torch.no_grad():
        expected = model.extract_features(_batch(photos)).mean((2, 3))
        np.testing.assert_allclose(pooled, expected.numpy(), atol=1e-5)
        logits = model._fc(torch.from_numpy(pooled))
        np.testing.assert_allclose(logits, model(_batch(photos)), atol=1e-4)


def test_prefetched_batches_keep_order_and_sizes(tmp_path):
    paths = []
    for i in range(11):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(paths[-1])

    def value(im):
        return torch.tensor([float(np.asarray(im)[0, 0])])

    batches = list(prefetched_batches(paths, value, batch_size=4, workers=3, ahead=1))
    assert [len(b) for b in batches] == [4, 4, 3]
    assert torch.cat(batches).flatten().tolist() == list(range(11))


@pytest.mark.parametrize("backbone, crop", [("efficientnet_lite0", False), ("efficientnet_lite0", True),
                                            ("resnet50", False)])
def test_batches_hold_the_per_image_transforms_exact_values(photos, backbone, crop):
    """ToTensor + Normalize as a table look-up on the batch: bit-identical to the per-image transform."""
    transform = imagenet_transform(SIZE, backbone=backbone, crop=crop)
    assert features._split_normalisation(transform) is not None
    batch = features._load_batch(photos, transform)
    assert batch.dtype == torch.float32 and batch.shape == (5, 3, SIZE, SIZE)
    assert torch.equal(batch, torch.stack([transform(Image.open(p)) for p in photos]))


def test_batches_of_other_transforms_are_stacked_per_image(photos):
    from torchvision import transforms as T

    grey = T.Compose([T.Resize((8, 8)), T.ToTensor(), T.Normalize([0.5, 0.5, 0.5], [0.2, 0.2, 0.2])])
    with pytest.raises(RuntimeError):  # the greyscale photo has one channel for three means, as per image
        features._load_batch(photos, grey)
    plain = T.Compose([T.Resize((8, 8)), T.Lambda(lambda im: im.convert("RGB")), T.ToTensor()])
    assert features._split_normalisation(plain) is None
    assert torch.equal(features._load_batch(photos, plain), torch.stack([plain(Image.open(p)) for p in photos]))


def test_onnx_runtime_threads_and_batch_size_leave_the_values_unchanged(photos):
    ref = extract_features("efficientnet_lite0", photos, size=SIZE, spatial=True, use_cache=False, threads=2)
    for threads, batch_size in ((1, 32), (1, 2), (2, 3)):
        maps = extract_features("efficientnet_lite0", photos, size=SIZE, spatial=True, use_cache=False,
                                threads=threads, batch_size=batch_size)
        np.testing.assert_array_equal(maps, ref)


def test_bad_requests_fail_before_any_work(photos, tmp_path):
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        extract_features("efficientnet_lite0", photos, runtime="tensorrt")
    with pytest.raises(ValueError, match="cuts are stages of efficientnet_lite0"):
        extract_features("efficientnet_lite0", photos, cut="block9")
    with pytest.raises(ValueError, match="cuts are stages of efficientnet_lite0"):
        extract_features("resnet50", photos, cut="stage6")
    with pytest.raises(ValueError, match="at least one image"):
        extract_features("efficientnet_lite0", [])
    with pytest.raises(DataError, match="1 image files are missing"):
        extract_features("efficientnet_lite0", [*photos, tmp_path / "gone.jpg"])
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="has none"):
            extract_features("efficientnet_lite0", photos, device="cuda")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot read image .*broken.jpg"):
        extract_features("efficientnet_lite0", [*photos, broken], size=SIZE, cache_key="broken")
    leftovers = [p for p in features.cache_dir().glob("features/broken-*") if p.suffix != ".lock"]  # the lock stays (empty)
    assert not leftovers and not list(features.cache_dir().glob("features/.*.tmp"))


def test_gpu_uses_pytorch_not_onnx():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    assert features.resolve_runtime("auto", "cuda") == "torch"
    with pytest.raises(ValueError, match="CPU only"):
        features.resolve_runtime("onnxruntime", "cuda")


def test_infocam_features_warms_the_tiny_imagenet_cache(tmp_path, monkeypatch, capsys):
    from infocam import cli
    from infocam.data.tiny_imagenet import load_tiny_imagenet, make_fixture

    make_fixture(tmp_path / "root")
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path / "root"))
    monkeypatch.setattr(features, "TINY_IMAGE_SIZE", SIZE)
    assert cli.main(["features"]) == 0
    out = capsys.readouterr().out
    assert "Tiny-ImageNet" in out and "onnxruntime" in out and "CUB" not in out
    tiny = load_tiny_imagenet(tmp_path / "root", "val")
    path = feature_cache_path(features.BACKBONE, tiny.paths, size=SIZE, spatial=True,
                              cache_key=features.TINY_CACHE_KEY)
    assert path.is_file() and np.load(path).shape == (len(tiny), 1280, 2, 2)


def test_chapters_read_the_cub_size_that_infocam_features_warms():
    from infocam import runs

    assert runs.load_profile("03_imbalanced", "default")["image_size"] == features.CUB_IMAGE_SIZE
    assert runs.load_profile("04_infocam", "default")["cub_image_size"] == features.CUB_IMAGE_SIZE
