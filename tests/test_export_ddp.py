"""A to_torch model trains under DistributedDataParallel as minidl trains it on one process.

Two processes (gloo, CPU, 127.0.0.1) each take half of a batch for a few SGD steps; DDP
averages their gradients, so the parameters must end where minidl's own SGD on the whole batch
ends. The model carries a MindSpore-only convention (TF-style 'same' at stride 2, which the
export turns into a subclass of nn.Conv2d padding explicitly), and is pickled to the workers.
"""

from __future__ import annotations

import copy
import os
import socket
from datetime import timedelta

import numpy as np

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.export import to_torch

STEPS, LR, WORLD = 3, 0.1, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, module, x: np.ndarray, y: np.ndarray, out: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        # spawn hands the processes the module's tensors in shared memory: each takes its own
        # copy, as separate machines would have
        model = torch.nn.parallel.DistributedDataParallel(copy.deepcopy(module))
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        half = len(x) // WORLD
        xs, ys = (torch.from_numpy(a[rank * half:(rank + 1) * half]) for a in (x, y))
        for _ in range(STEPS):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(xs), ys).backward()
            optimizer.step()
        if rank == 0:
            state = {k: v.detach().numpy() for k, v in model.module.state_dict().items()}
            np.savez(out, **state)
        dist.barrier()  # both ranks reach the teardown together
    finally:
        dist.destroy_process_group()
    # Done and saved: leave without the interpreter's teardown, where a C++ thread still
    # joinable at exit (torch's and OpenMP's thread pools in one process) now and then made
    # the worker abort ("terminate called without an active exception") after its work.
    os._exit(0)


def build() -> nn.Sequential:
    minidl.manual_seed(7)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, has_bias=True, profile="mindspore"), nn.ReLU(),
        nn.Conv2d(4, 4, 3, pad_mode="pad", padding=(0, 1, 1, 0), has_bias=True,
                  profile="mindspore"),
        nn.Tanh(), nn.Flatten(), nn.Linear(4 * 3 * 3, 3),
    ).double()


def train_in_minidl(model: nn.Module, x: np.ndarray, y: np.ndarray) -> None:
    optimizer = minidl.optim.SGD(model.parameters(), lr=LR)
    for _ in range(STEPS):
        optimizer.zero_grad()
        F.mse_loss(model(minidl.tensor(x)), minidl.tensor(y)).backward()
        optimizer.step()


def test_ddp_training_of_an_exported_model_equals_whole_batch_training(torch, tmp_path,
                                                                       monkeypatch):
    import torch.multiprocessing as mp

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 2, 8, 8)), rng.standard_normal((8, 3))
    model = build()
    exported = to_torch(model)
    initial = model.state_dict(profile="torch")

    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # stay on the loopback interface
    out = str(tmp_path / "ddp.npz")
    mp.spawn(worker, args=(free_port(), exported, x, y, out), nprocs=WORLD, join=True)

    train_in_minidl(model, x, y)
    trained = model.state_dict(profile="torch")
    with np.load(out) as ddp:
        assert sorted(ddp.files) == sorted(trained)
        for key in trained:
            assert not np.allclose(trained[key], initial[key]), key  # training moved it
            np.testing.assert_allclose(ddp[key], trained[key], rtol=1e-10, atol=1e-12,
                                       err_msg=key)
