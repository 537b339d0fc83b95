"""Every optimizer configuration on CUDA against the same run on the CPU.

Runs wherever a CUDA device is present (whatever path inertia picks there: Triton
kernels or the reference) and skips cleanly elsewhere.
"""
import pytest
import torch

from inertia.optim.registry import REGISTRY

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CASES = [(name, config) for name, info in REGISTRY.items() for config in info.configs]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name,config", CASES)
def test_cuda_matches_cpu(name, config, dtype):
    info = REGISTRY[name]
    gen = torch.Generator().manual_seed(0)
    shapes = [(64, 33), (1000,), (3, 5, 7)]
    cpu = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in shapes]
    gpu = [torch.nn.Parameter(p.detach().cuda()) for p in cpu]
    opt_cpu, opt_gpu = info.make(cpu, config, fused=False), info.make(gpu, config)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for t in range(20):
        for a, b in zip(cpu, gpu):
            g = torch.randn(a.shape, generator=gen, dtype=dtype)
            a.grad, b.grad = g, g.cuda()
        opt_cpu.step()
        opt_gpu.step()
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.detach().cpu(), a.detach(), **tol)
        for key, value in opt_cpu.state[a].items():
            torch.testing.assert_close(opt_gpu.state[b][key].cpu(), value, **tol, msg=key)


@pytest.mark.parametrize("name", REGISTRY)
def test_cuda_sparse_lazy(name):
    info = REGISTRY[name]
    emb = torch.nn.Embedding(100, 8, sparse=True).cuda()
    opt = info.make(emb.parameters(), sparse="lazy")
    before = emb.weight.detach().clone()
    emb(torch.tensor([3, 7, 7], device="cuda")).sum().backward()
    opt.step()
    changed = (emb.weight.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [3, 7]
