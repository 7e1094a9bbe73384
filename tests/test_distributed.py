"""clgrad.distributed: the API's errors and DistributedSampler in this process, and the
collectives and DistributedDataParallel under `mpiexec -n 2` (tests/_mpi_worker.py, one MPI job
per test: a rank that fails aborts the job, so nothing hangs).

The MPI jobs pick each rank's device as users get it (rank % number of devices: Intel's runtime
for rank 0 and PoCL for rank 1 on this machine), so they also check training across platforms."""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import clgrad
import clgrad.distributed as dist
from clgrad import nn
from clgrad.utils.data import DataLoader, DistributedSampler, TensorDataset

try:
    import torch
    import torch.utils.data as torch_data
except ImportError:
    torch = None

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "_mpi_worker.py"
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(pathlib.Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))

needs_mpi = pytest.mark.skipif(
    not dist.is_mpi_available() or MPIEXEC is None,
    reason="needs mpi4py and an mpiexec (pip install 'clgrad[mpi]': mpi4py and the mpich "
           "wheel); " + ("mpi4py is missing" if not dist.is_mpi_available() else
                         "no mpiexec next to python or on PATH"))


def _mpirun(mode, n=2, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CLGRAD_DEVICE", None)
    r = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, str(WORKER), mode], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"mpiexec -n {n} {mode} failed ({r.returncode}):\n{out[-6000:]}"
    for rank in range(n):
        assert f"OK {mode} rank {rank} " in r.stdout, out[-6000:]
    return r.stdout


@needs_mpi
def test_collectives_under_mpiexec_match_numpy():
    # all_reduce (every ReduceOp) of random tensors against numpy, broadcast, reduce, the
    # gathers, scatter, object collectives, and one d2h + one h2d per all_reduce
    _mpirun("collectives")


@needs_mpi
def test_groups_of_one_rank_and_of_both():
    # new_group over MPI communicators: collectives on a group of one rank, of both ranks (also
    # new_group()), the non-member's warning, global vs group roots, destroy_process_group(g)
    _mpirun("groups")


@needs_mpi
def test_ddp_two_ranks_match_one_process_after_5_steps():
    _mpirun("ddp")


@needs_mpi
def test_ddp_over_sub_groups():
    # process_group=new_group(...): a group of one rank trains alone, a group of both as the world
    _mpirun("ddp_groups")


@needs_mpi
def test_ddp_bucket_all_reduce_starts_during_backward():
    # instrumented, not timed: the first bucket's all_reduce is issued before the backward
    # walk's last node runs, and the overlapped gradients are still the mean over ranks
    _mpirun("ddp_overlap")


@needs_mpi
def test_ddp_no_sync_and_unused_parameters():
    _mpirun("ddp_no_sync_and_unused")


@needs_mpi
def test_mnist_cnn_distributed_dry_run(tmp_path):
    # both ranks on the first test device (fast to build); rank 0 alone prints and writes
    dev = (os.environ.get("CLGRAD_TEST_DEVICES") or "cl:0").split(",")[0]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(ROOT / "examples" / "mnist_cnn.py"),
                        "--distributed", "--dry-run", "--device", dev, "--no-progress",
                        "--out", str(tmp_path / "out")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("device "), r.stdout
    assert f"distributed: 2 processes over MPI, devices {dev}, {dev}; 32 samples" in r.stdout
    assert r.stdout.count("final held-out accuracy") == 1, r.stdout
    assert {"checkpoint.ckpt", "model.ckpt", "metrics.csv"} <= {
        f.name for f in (tmp_path / "out").iterdir()}
    state = clgrad.load(str(tmp_path / "out" / "model.ckpt"))
    assert "conv1.weight" in state          # the bare model: a one-process run can load it


def test_api_errors_without_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        dist.all_reduce(clgrad.ones(2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))
    for backend in ("nccl", "gloo"):
        with pytest.raises(RuntimeError, match=f"backend '{backend}' is not available.*mpi"):
            dist.init_process_group(backend=backend)
    with pytest.raises(ValueError, match="mpiexec starts and connects"):
        dist.init_process_group("mpi", init_method="tcp://10.0.0.1:23456")
    assert not dist.is_initialized()
    assert dist.is_available() and not dist.is_nccl_available()
    assert nn.DistributedDataParallel is nn.parallel.DistributedDataParallel


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (12, 4, False),
                                                  (2, 5, False), (7, 1, True), (0, 2, False),
                                                  (5, 3, True)])
def test_distributed_sampler_unshuffled_matches_pytorch_semantics(n, replicas, drop_last):
    data = list(range(n))
    ours = [list(DistributedSampler(data, replicas, r, shuffle=False, drop_last=drop_last))
            for r in range(replicas)]
    # PyTorch's rule written out: pad by repeating from the start, or cut; rank r strides by R
    per = -(-(n - replicas) // replicas) if drop_last and n % replicas else -(-n // replicas)
    idx = list(range(n))
    idx = idx[:per * replicas] if drop_last else (idx * (per * replicas // max(n, 1) + 1)
                                                  )[:per * replicas]
    assert ours == [idx[r::replicas] for r in range(replicas)]
    assert all(len(o) == len(DistributedSampler(data, replicas, 0, drop_last=drop_last)) == per
               for o in ours)
    if torch is not None:
        theirs = [list(torch_data.DistributedSampler(data, replicas, r, shuffle=False,
                                                     drop_last=drop_last))
                  for r in range(replicas)]
        assert ours == theirs


def test_distributed_sampler_shuffles_alike_on_every_rank_per_epoch():
    data = list(range(23))

    def epoch(e, seed=0):
        out = []
        for r in range(4):
            s = DistributedSampler(data, 4, r, seed=seed)
            s.set_epoch(e)
            out.append(list(s))
        return out

    e0 = epoch(0)
    assert e0 == epoch(0)                               # reproducible: seed + epoch only
    flat = [i for part in e0 for i in part]
    assert len(flat) == 24 and set(flat) == set(data)   # one index repeated as padding
    assert flat != sorted(flat)
    assert epoch(1) != e0 and epoch(0, seed=1) != e0
    dropped = [list(DistributedSampler(data, 4, r, drop_last=True)) for r in range(4)]
    got = [i for part in dropped for i in part]
    assert len(got) == 20 == len(set(got))              # the tail is dropped, nothing repeats
    with pytest.raises(ValueError, match="Invalid rank 4"):
        DistributedSampler(data, 4, 4)


def test_distributed_sampler_feeds_a_dataloader():
    ds = TensorDataset(clgrad.arange(10).float())
    parts = []
    for r in range(2):
        loader = DataLoader(ds, batch_size=2, sampler=DistributedSampler(ds, 2, r, seed=3))
        parts.append(np.concatenate([b[0].numpy() for b in loader]))
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
