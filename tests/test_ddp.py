"""infocam.train under DistributedDataParallel: two CPU processes on Gloo match one process at the same global batch.

Also through ``torchrun -m infocam train``: one writer, per-image augmentation streams, a stopped and
resumed run equal to an uninterrupted one, ranks that stop when their launcher dies.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from infocam.train import GlobalBatches, SeededItems, fit, world

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with Gloo is not available")

PER_RANK = 8  # two ranks × 8 = the one process's batch of 16


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 10, generator=g)
    return X, (X[:, :3].sum(1) > 0).long() + (X[:, 3] > 1).long()


class Noisy(torch.utils.data.Dataset):
    """The tensors with a random augmentation drawn per item from torch's RNG (as the image transforms draw)."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i] + 0.3 * torch.randn(self.X.shape[1:]), self.y[i]


def _inputs(kind):
    X, y = _data()
    if kind == "tensors":
        return X, y
    return (torch.utils.data.TensorDataset(X, y) if kind == "dataset" else Noisy(X, y)), None


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))


def _settings(batch_size):
    return dict(epochs=3, batch_size=batch_size, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, seed=4,
                head="2", head_lr_mult=10, schedule="step", step_size=2)


def _worker(rank, size, port, out, kind):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        net = _net()
        history = fit(net, *_inputs(kind), F.cross_entropy, **_settings(PER_RANK))
        assert world() == (rank, size)
        torch.save({"history": history, "state": net.state_dict()}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_world_outside_a_process_group():
    assert world() == (0, 1)


@pytest.mark.slow  # spawns two Gloo ranks
@pytest.mark.parametrize("kind", ["tensors", "dataset", "augmented"])
def test_two_gloo_ranks_match_one_process_at_the_same_global_batch(tmp_path, kind):
    """batch_size is per process: 2 ranks × 8 = one process × 16; with random augmentation too."""
    single = _net()
    h_single = fit(single, *_inputs(kind), F.cross_entropy, **_settings(2 * PER_RANK))
    out = tmp_path / "rank"
    mp.start_processes(_worker, args=(2, _free_port(), str(out), kind), nprocs=2, join=True, start_method="spawn")
    r0, r1 = (torch.load(f"{out}.{r}") for r in (0, 1))
    assert r0["history"] == r1["history"]  # the loss is reduced across ranks
    for a, b in zip(r0["state"].values(), r1["state"].values()):
        assert torch.equal(a, b)  # DDP keeps the replicas identical
    assert r0["history"] == pytest.approx(h_single, rel=1e-5)
    assert h_single[-1] < h_single[0]
    gap = max(float((a - b).abs().max()) for a, b in zip(single.state_dict().values(), r0["state"].values()))
    print(f"{kind}: max |weight(2 ranks) - weight(1 process)| = {gap:.2e}")
    assert gap < 1e-5


def test_every_image_of_a_global_batch_draws_its_own_augmentation():
    """Ranks 0 and 1 of a 2-process run and one process draw the same, distinct numbers per image and epoch."""

    class Draw(torch.utils.data.Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return torch.rand(()), i

    def epoch_draws(rank, size, batch, epoch):
        sampler = GlobalBatches(40, batch, rank, size, seed=3, drop_last=False)
        sampler.set_epoch(epoch)
        items = SeededItems(Draw(), seed=3)
        return {i: float(v) for keys in sampler for v, i in (items[k] for k in keys)}

    for epoch in (0, 1):
        ranks = [epoch_draws(r, 2, 4, epoch) for r in (0, 1)]
        assert not set(ranks[0]) & set(ranks[1]) and len(ranks[0]) + len(ranks[1]) == 40  # disjoint shares
        both = {**ranks[0], **ranks[1]}
        assert len(set(both.values())) == 40  # no two images share a draw
        assert both == epoch_draws(0, 1, 8, epoch)  # what one process draws
    assert epoch_draws(0, 1, 8, 0) != epoch_draws(0, 1, 8, 1)  # a new draw every epoch
    # the training RNG is untouched by in-process item reads
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    epoch_draws(0, 1, 8, 0)
    assert torch.equal(torch.rand(3), before)


def _torchrun(recipe, *args, wait=True, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INFOCAM_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "infocam", "train", str(recipe), *args]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow  # torchrun: two training processes
def test_torchrun_two_gloo_processes_run_a_recipe_with_one_writer(tmp_path):
    """``torchrun --nproc-per-node 2 -m infocam train`` on CPU: Gloo, sharded data, one writer, rank 0 alone prints."""
    from tests.test_cub import make_tiny_cub
    from tests.test_recipe import _tiny_recipe

    make_tiny_cub(tmp_path, num_classes=3, n_train=6, n_test=4)
    path = _tiny_recipe(tmp_path, tmp_path, batch_size=4)
    proc = _torchrun(path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert (results["world_size"], results["global_batch"], results["batch_size_per_process"]) == (2, 8, 4)
    assert results["dataset"] == "cub" and len(results["train_loss"]) == 2
    assert all(v == v and v > 0 for v in results["train_loss"])
    assert proc.stdout.count("test top-1") == 1 and proc.stdout.count("epoch 1/2") == 1  # rank 0 alone prints
    assert [line.startswith("results: ") for line in proc.stdout.splitlines()].count(True) == 1
    assert [json.loads(t)["epoch"] for t in (out / "log.jsonl").read_text().splitlines()] == [1, 2]  # one writer
    assert not (out / ".lock").exists()


@pytest.mark.slow  # torchrun: two training processes
def test_torchrun_sync_bn_on_cpu_is_one_line(tmp_path):
    from tests.test_cub import make_tiny_cub
    from tests.test_recipe import _tiny_recipe

    make_tiny_cub(tmp_path, num_classes=3, n_train=2, n_test=2)
    proc = _torchrun(_tiny_recipe(tmp_path, tmp_path, batch_size=4), "-s", "train.sync_bn=true")
    assert proc.returncode != 0
    assert proc.stderr.count("infocam: error: train.sync_bn needs CUDA") == 1  # rank 0 alone says it


@pytest.mark.slow  # torchrun, stopped by a signal
def test_torchrun_stopped_by_sigterm_then_resumed_equals_an_uninterrupted_run(tmp_path):
    from tests.test_cub import make_tiny_cub
    from tests.test_recipe import _tiny_recipe

    make_tiny_cub(tmp_path, num_classes=3, n_train=8, n_test=2)
    path = _tiny_recipe(tmp_path, tmp_path, epochs=12, batch_size=2, schedule="step", step_size=4)
    full = _torchrun(path, "-s", f"output={tmp_path / 'full'}")
    assert full.returncode == 0, full.stderr[-3000:]
    proc = _torchrun(path, wait=False)
    for line in proc.stdout:
        if line.startswith("epoch 2/"):
            break
    proc.send_signal(signal.SIGTERM)  # the launcher forwards it to both ranks
    _, err = proc.communicate(timeout=300)
    state = torch.load(tmp_path / "out" / "last.pt", weights_only=False)
    assert state["epoch"] < 12, "the run finished before SIGTERM arrived"
    assert proc.returncode != 0 and err.count("SIGTERM: stopped ") == 1, err[-3000:]
    again = _torchrun(path)
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("full", "out"))
    assert a["train_loss"] == b["train_loss"]
    wa, wb = (torch.load(tmp_path / d / "model.pt", weights_only=False) for d in ("full", "out"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _children(pid):
    found = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(stat))
    return found


@pytest.mark.slow  # torchrun, its launcher killed
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc")
def test_ranks_stop_when_the_launcher_dies_and_the_next_run_starts(tmp_path):
    from tests.test_cub import make_tiny_cub
    from tests.test_recipe import _tiny_recipe

    make_tiny_cub(tmp_path, num_classes=3, n_train=8, n_test=2)
    path = _tiny_recipe(tmp_path, tmp_path, epochs=400, batch_size=2)
    proc = _torchrun(path, wait=False)
    for line in proc.stdout:
        if line.startswith("epoch 1/"):
            break
    ranks = _children(proc.pid)
    assert len(ranks) == 2
    proc.kill()  # SIGKILL: the launcher cannot forward anything
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(os.path.exists(f"/proc/{r}") and
                                         open(f"/proc/{r}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
                                         for r in ranks):
        time.sleep(0.2)
    alive = [r for r in ranks if os.path.exists(f"/proc/{r}")
             and open(f"/proc/{r}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive, f"ranks {alive} kept running after their launcher died"
    out = tmp_path / "out"
    assert "launcher" in (out / "failed.txt").read_text()
    again = _torchrun(path, "--fresh", "-s", "train.epochs=1")
    assert again.returncode == 0, again.stderr[-3000:]  # a lock left by a killed rank 0 is swept, not obeyed
    assert not (out / ".lock").exists() and not (out / "failed.txt").exists()
