"""infocam.train under DistributedDataParallel: two CPU processes on Gloo match one process."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from infocam.train import fit, world

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with Gloo is not available")


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 10, generator=g)
    return X, (X[:, :3].sum(1) > 0).long() + (X[:, 3] > 1).long()


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))


def _settings():
    return dict(epochs=3, batch_size=16, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, seed=4,
                head="2", head_lr_mult=10, schedule="step", step_size=2)


def _worker(rank, size, port, out, dataset):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        X, y = _data()
        net = _net()
        data = (torch.utils.data.TensorDataset(X, y), None) if dataset else (X, y)
        history = fit(net, *data, F.cross_entropy, **_settings())
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


@pytest.mark.parametrize("dataset", [False, True], ids=["tensors", "dataset"])
def test_two_gloo_ranks_match_one_process(tmp_path, dataset):
    X, y = _data()
    single = _net()
    data = (torch.utils.data.TensorDataset(X, y), None) if dataset else (X, y)
    h_single = fit(single, *data, F.cross_entropy, **_settings())
    out = tmp_path / "rank"
    mp.start_processes(_worker, args=(2, _free_port(), str(out), dataset), nprocs=2, join=True, start_method="spawn")
    r0, r1 = (torch.load(f"{out}.{r}") for r in (0, 1))
    assert r0["history"] == r1["history"]  # the loss is reduced across ranks
    for a, b in zip(r0["state"].values(), r1["state"].values()):
        assert torch.equal(a, b)  # DDP keeps the replicas identical
    assert r0["history"] == pytest.approx(h_single, rel=1e-5)
    assert h_single[-1] < h_single[0]
    for a, b in zip(single.state_dict().values(), r0["state"].values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_torchrun_two_gloo_processes_run_a_recipe(tmp_path):
    """``torchrun --nproc-per-node 2 -m infocam train`` on CPU: Gloo, sharded data, one results.json."""
    import json
    import os
    import subprocess
    import sys

    from tests.test_cub import make_tiny_cub
    from tests.test_recipe import _tiny_recipe

    cub = make_tiny_cub(tmp_path, num_classes=3, n_train=6, n_test=4)
    path = _tiny_recipe(tmp_path, cub)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INFOCAM_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "infocam", "train", str(path)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["world_size"] == 2 and len(results["train_loss"]) == 2
    assert all(v == v and v > 0 for v in results["train_loss"])
    assert proc.stdout.count("test top-1") == 1  # both ranks finished (exit 0); only rank 0 evaluates and writes
