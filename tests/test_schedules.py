import math

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import inertia
from inertia import schedules as S


@pytest.mark.parametrize("t", [0, 1, 7, 25, 100])
def test_closed_forms(t):
    assert S.constant(0.3)(t) == 0.3
    assert S.exponential(0.1, 0.05)(t) == pytest.approx(0.1 * math.exp(-0.05 * t))
    assert S.inverse_time(0.1, 0.5)(t) == pytest.approx(0.1 / (1 + 0.5 * t))
    assert S.step(0.1)(t) == pytest.approx(0.1 * 0.5 ** (t // 10))
    assert S.cosine(0.1, 100, 0.01)(t) == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * t / 100)) / 2)
    assert S.warmup(0.1, 10)(t) == pytest.approx(0.1 * min(t, 10) / 10)


def test_seed_numbers():
    # The lesson: step decay halves every 10 epochs; cosine ends at lr_min.
    assert [S.step(1.0)(e) for e in (0, 9, 10, 19, 20)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert S.cosine(0.1, 50)(50) == 0.0 and S.cosine(0.1, 50)(80) == 0.0
    assert S.cosine(0.1, 50)(25) == pytest.approx(0.05)


def test_warmup_then_cosine():
    sched = S.sequence((S.warmup(1.0, 4), 4), S.cosine(1.0, 4))
    assert [round(sched(t), 4) for t in range(10)] == [0.0, 0.25, 0.5, 0.75, 1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    assert "warmup" in repr(sched) and "cosine" in repr(sched)


@pytest.mark.parametrize("make,match", [
    (lambda: S.constant(-1.0), r"Invalid lr0: -1\.0"),
    (lambda: S.exponential(0.1, -1), r"Invalid k: -1"),
    (lambda: S.step(0.1, every=0), r"Invalid every: 0"),
    (lambda: S.step(0.1, factor=1.5), r"Invalid factor: 1\.5"),
    (lambda: S.cosine(0.1, 0), r"Invalid T: 0"),
    (lambda: S.warmup(0.1, 0), r"Invalid steps: 0"),
    (lambda: S.sequence(), r"Invalid parts"),
    (lambda: S.sequence(S.constant(1.0), S.constant(2.0)), r"Invalid part"),
    (lambda: S.constant(1.0)(-1), r"Invalid t: -1"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("opt_cls", [torch.optim.SGD, inertia.SGD, inertia.Adam])
def test_scheduler_drives_any_optimizer(opt_cls):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = opt_cls([p], lr=1.0)
    sched = S.Scheduler(opt, S.exponential(1.0, 0.1))
    seen = []
    for _ in range(3):
        seen.append(opt.param_groups[0]["lr"])
        sched.step()
    assert seen == pytest.approx([1.0, math.exp(-0.1), math.exp(-0.2)])
    state = sched.state_dict()
    again = S.Scheduler(opt, S.exponential(1.0, 0.1))
    again.load_state_dict(state)
    assert opt.param_groups[0]["lr"] == pytest.approx(math.exp(-0.3))


def test_scheduler_scales_each_group_from_its_initial_lr():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = inertia.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}])
    sched = S.Scheduler(opt, S.step(5.0, every=1), scale_by_initial=True)
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.5, 0.05])


def test_tensor_lr_is_written_in_place_so_compiled_steps_never_recompile():
    torch._dynamo.reset()
    p = torch.nn.Parameter(torch.ones(3))
    lr = torch.tensor(0.1)
    opt = torch.optim.SGD([p], lr=lr)
    sched = S.Scheduler(opt, S.exponential(0.1, 0.1))
    counter = CompileCounter()

    @torch.compile(backend=counter)
    def step():
        opt.step()

    expected = torch.ones(3)
    for t in range(5):
        p.grad = torch.ones(3)
        step()
        expected -= 0.1 * math.exp(-0.1 * t)
        sched.step()
    assert opt.param_groups[0]["lr"] is lr
    assert counter.frame_count == 1
    torch.testing.assert_close(p.detach(), expected)
