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


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(),
                               torch.nn.Linear(64, 1)).cuda()


@pytest.mark.parametrize("name", ["sgd", "adam", "lamb", "lion"])
def test_a_step_never_synchronises(name):
    """After the first step (plans, kernels), opt.step() makes no host synchronisation."""
    model = _mlp()
    opt = REGISTRY[name].make(model.parameters(), lr=torch.tensor(1e-3, device="cuda"))
    x, y = torch.randn(16, 32, device="cuda"), torch.randn(16, 1, device="cuda")
    for t in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        if t == 2:
            torch.cuda.set_sync_debug_mode("error")
        try:
            opt.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("name", ["sgd", "adam", "lamb"])
def test_a_whole_training_step_is_captured_in_a_cuda_graph(name):
    """forward, backward and opt.step() captured with torch.cuda.graph replay equal to eager."""
    models = _mlp(), _mlp()
    lr = torch.tensor(1e-2, device="cuda")
    opts = [REGISTRY[name].make(m.parameters(), lr=lr) for m in models]
    xs = [torch.randn(16, 32, device="cuda") for _ in range(6)]
    ys = [torch.randn(16, 1, device="cuda") for _ in range(6)]
    static_x, static_y = xs[0].clone(), ys[0].clone()

    def train_step(model, opt, x, y):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: plans, kernels, state
        for model, opt in zip(models, opts):
            for t in range(2):
                opt.zero_grad(set_to_none=True)
                train_step(model, opt, xs[t], ys[t])
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opts[0].zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        train_step(models[0], opts[0], static_x, static_y)
    for t in range(2, 6):
        static_x.copy_(xs[t])
        static_y.copy_(ys[t])
        lr.fill_(1e-2 / t)
        graph.replay()
        opts[1].zero_grad(set_to_none=True)
        train_step(models[1], opts[1], xs[t], ys[t])
    torch.cuda.synchronize()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_cpu_checkpoint_continues_on_the_gpu():
    cpu_model, gpu_model = _mlp().cpu(), _mlp()
    a = REGISTRY["adam"].make(cpu_model.parameters())
    x, y = torch.randn(16, 32), torch.randn(16, 1)
    torch.nn.functional.mse_loss(cpu_model(x), y).backward()
    a.step()
    gpu_model.load_state_dict(cpu_model.state_dict())
    b = REGISTRY["adam"].make(gpu_model.parameters())
    b.load_state_dict(a.state_dict())
    for p in gpu_model.parameters():
        assert b.state[p]["step"].device == p.device
        assert b.state[p]["exp_avg"].device == p.device
    torch.nn.functional.mse_loss(gpu_model(x.cuda()), y.cuda()).backward()
    b.step()


def test_compiled_step_on_the_gpu_equals_eager():
    models = _mlp(), _mlp()
    opts = [REGISTRY["adamw"].make(m.parameters(), lr=torch.tensor(1e-2, device="cuda"))
            for m in models]
    step = torch.compile(opts[0].step, fullgraph=True)
    x, y = torch.randn(16, 32, device="cuda"), torch.randn(16, 1, device="cuda")
    for t in range(5):
        for m in models:
            m.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
        step()
        opts[1].step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
