"""gather_unique: padded repeats dropped, order restored, also across 2 gloo processes."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genood.evaluation.gather import gather_unique


def test_single_process_dedupes_and_sorts():
    index = torch.tensor([4, 0, 2, 0, 1, 3, 4])
    out = {"s": index.double() * 10, "v": torch.stack([index, -index], 1), "b": index % 2 == 0}
    idx, got = gather_unique(index, out)
    assert idx.tolist() == [0, 1, 2, 3, 4]
    assert got["s"].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert got["v"][:, 1].tolist() == [0, -1, -2, -3, -4]
    assert got["b"].tolist() == [True, False, True, False, True]


def _worker(rank: int, world: int, port: int, result):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    # what a DistributedSampler(shuffle=False) gives 2 ranks for 5 samples: rank0 [0,2,4], rank1 [1,3,0(pad)]
    index = torch.tensor([[0, 2, 4], [1, 3, 0]][rank])
    if rank == 1:
        index = index[:2]  # uneven counts are handled too
    out = {"s": index.float() + 0.5, "flag": index > 2}
    if rank == 1:  # another insertion order on the other rank must not mix keys up
        out = dict(reversed(list(out.items())))
    idx, out = gather_unique(index, out)
    result[rank] = (idx.tolist(), out["s"].tolist(), out["flag"].tolist())
    dist.destroy_process_group()


def test_two_gloo_processes_gather_every_sample_once():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    result = manager.dict()
    mp.spawn(_worker, args=(2, port, result), nprocs=2, join=True)
    for rank in (0, 1):
        assert result[rank] == ([0, 1, 2, 3, 4], [0.5, 1.5, 2.5, 3.5, 4.5], [False, False, False, True, True])
