"""SGD, Adam, AdamW and RMSprop against their formulas and against torch.optim; schedules.

Every optimiser runs 20 steps on two parameters whose gradients depend on the parameters
(a noisy quadratic), so any difference in an update feeds into the later ones.  Two oracles:

- the update formula written out below, independently of ``symgrad.nn.optim`` (always);
- ``torch.optim`` in float64, step by step (when torch is importable; CI has no torch).
"""

import math

import numpy as np
import pytest

import symgrad as sg

optim, schedules = sg.nn.optim, sg.nn.schedules

STEPS, STEPS_PER_EPOCH = 20, 5
SHAPES = {"W": (3, 4), "b": (4,)}


def gradients(params, t):
    """A gradient field: 2 (w - target) plus noise fixed by the step ``t``."""
    rng = np.random.default_rng(100 + t)
    return {k: 2.0 * (w - 0.5) + rng.standard_normal(w.shape) for k, w in params.items()}


def start():
    rng = np.random.default_rng(7)
    return {k: rng.standard_normal(shape) for k, shape in SHAPES.items()}


# --- the formulas, written out --------------------------------------------------------------


def sgd_formula(lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
    state = {}

    def update(k, w, g, lr_t, t):
        g = g + weight_decay * w
        if momentum:
            b = g if t == 1 else momentum * state[k] + (1 - dampening) * g
            state[k] = b
            g = g + momentum * b if nesterov else b
        return w - lr_t * g

    return lr, update


def adam_formula(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    m, v = {}, {}

    def update(k, w, g, lr_t, t):
        b1, b2 = betas
        if decoupled:
            w = w * (1 - lr_t * weight_decay)
        else:
            g = g + weight_decay * w
        m[k] = b1 * m.get(k, 0.0) + (1 - b1) * g
        v[k] = b2 * v.get(k, 0.0) + (1 - b2) * g * g
        m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)  # the paper's bias correction
        return w - lr_t * m_hat / (np.sqrt(v_hat) + eps)

    return lr, update


def rmsprop_formula(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    v, a, buf = {}, {}, {}

    def update(k, w, g, lr_t, t):
        g = g + weight_decay * w
        v[k] = alpha * v.get(k, 0.0) + (1 - alpha) * g * g
        if centered:
            a[k] = alpha * a.get(k, 0.0) + (1 - alpha) * g
            d = np.sqrt(v[k] - a[k] ** 2) + eps
        else:
            d = np.sqrt(v[k]) + eps
        if momentum:
            buf[k] = momentum * buf.get(k, 0.0) + g / d
            return w - lr_t * buf[k]
        return w - lr_t * g / d

    return lr, update


SCHEDULE = schedules.step(milestones=(2, 3), factor=0.5)  # epochs of 5 steps: 4 epochs

# (name, symgrad optimiser, its keyword arguments, a fresh formula, torch's class, kwargs)
CASES = [
    ("sgd", "SGD", {"lr": 0.05}, lambda: sgd_formula(0.05), "SGD", {}),
    (
        "sgd-momentum",
        "SGD",
        {"lr": 0.05, "momentum": 0.9},
        lambda: sgd_formula(0.05, 0.9),
        "SGD",
        {},
    ),
    (
        "sgd-nesterov-wd",
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
        lambda: sgd_formula(0.05, 0.9, True, 0.1),
        "SGD",
        {},
    ),
    (
        "sgd-dampening",
        "SGD",
        {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01},
        lambda: sgd_formula(0.05, 0.5, False, 0.01, 0.3),
        "SGD",
        {},
    ),
    ("adam", "Adam", {}, lambda: adam_formula(), "Adam", {}),
    (
        "adam-betas-wd",
        "Adam",
        {"lr": 0.1, "betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.1},
        lambda: adam_formula(0.1, (0.8, 0.99), 1e-3, 0.1),
        "Adam",
        {},
    ),
    (
        "adamw",
        "AdamW",
        {"lr": 0.05},
        lambda: adam_formula(0.05, weight_decay=1e-2, decoupled=True),
        "AdamW",
        {},
    ),
    (
        "adamw-wd",
        "AdamW",
        {"lr": 0.05, "weight_decay": 0.3, "betas": (0.5, 0.9)},
        lambda: adam_formula(0.05, (0.5, 0.9), weight_decay=0.3, decoupled=True),
        "AdamW",
        {},
    ),
    ("rmsprop", "RMSprop", {}, lambda: rmsprop_formula(), "RMSprop", {}),
    (
        "rmsprop-momentum-centered-wd",
        "RMSprop",
        {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.1, "alpha": 0.9},
        lambda: rmsprop_formula(0.01, 0.9, weight_decay=0.1, momentum=0.9, centered=True),
        "RMSprop",
        {},
    ),
]


def run_symgrad(kind, kwargs, schedule):
    params = start()
    arrays = dict(params)  # the same arrays: they must be updated in place
    opt = getattr(optim, kind)(params, **kwargs, **({"schedule": schedule} if schedule else {}))
    trajectory = []
    for t in range(STEPS):
        opt.step(gradients(params, t))
        if (t + 1) % STEPS_PER_EPOCH == 0:
            opt.next_epoch()
        trajectory.append({k: w.copy() for k, w in params.items()})
    assert all(params[k] is arrays[k] for k in params)
    return trajectory


def factor(schedule, t):
    return schedule(t // STEPS_PER_EPOCH) if schedule else 1.0


@pytest.mark.parametrize("schedule", [None, SCHEDULE], ids=["constant", "step"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_the_formula(case, schedule):
    _, kind, kwargs, formula, _, _ = case
    lr, update = formula()  # fresh state
    ours = run_symgrad(kind, kwargs, schedule)
    params = start()
    for t in range(STEPS):
        grads = gradients(params, t)
        params = {
            k: update(k, w, grads[k], lr * factor(schedule, t), t + 1) for k, w in params.items()
        }
        for k in params:
            np.testing.assert_allclose(
                ours[t][k], params[k], rtol=1e-12, atol=1e-14, err_msg=f"step {t} {k}"
            )


@pytest.mark.parametrize("schedule", [None, SCHEDULE], ids=["constant", "step"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_torch(case, schedule):
    torch = pytest.importorskip("torch")
    _, kind, kwargs, _, torch_kind, torch_extra = case
    ours = run_symgrad(kind, kwargs, schedule)
    tensors = {
        k: torch.tensor(w, dtype=torch.float64, requires_grad=True) for k, w in start().items()
    }
    opt = getattr(torch.optim, torch_kind)(list(tensors.values()), **kwargs, **torch_extra)
    base = opt.param_groups[0]["lr"]
    for t in range(STEPS):
        opt.param_groups[0]["lr"] = base * factor(schedule, t)
        grads = gradients({k: v.detach().numpy() for k, v in tensors.items()}, t)
        for k, v in tensors.items():
            v.grad = torch.tensor(grads[k])
        opt.step()
        for k, v in tensors.items():
            np.testing.assert_allclose(
                ours[t][k], v.detach().numpy(), rtol=1e-11, atol=1e-13, err_msg=f"step {t} {k}"
            )


def test_defaults_are_torchs():
    w = {"w": np.zeros(2)}
    adam, adamw, rms = optim.Adam(w), optim.AdamW(w), optim.RMSprop(w)
    assert (adam.base_lr, adam.betas, adam.eps, adam.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 0)
    assert (adamw.base_lr, adamw.weight_decay) == (1e-3, 1e-2)
    assert (rms.base_lr, rms.alpha, rms.eps, rms.momentum, rms.centered) == (
        1e-2,
        0.99,
        1e-8,
        0,
        False,
    )
    sgd = optim.SGD(w, lr=0.1)
    assert (sgd.momentum, sgd.nesterov, sgd.weight_decay, sgd.dampening) == (0, False, 0, 0)


def test_float32_parameters_stay_float32():
    for kind in ("SGD", "Adam", "AdamW", "RMSprop"):
        w = np.ones(3, dtype=np.float32)
        opt = getattr(optim, kind)({"w": w}, lr=0.1)
        opt.step({"w": np.full(3, 0.5)})
        opt.step({"w": np.full(3, 0.5)})
        assert w.dtype == np.float32 and np.all(w < 1)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, kwargs, message",
    [
        ("Adam", {"lr": -1e-3}, r"Adam: lr must be a number >= 0"),
        ("Adam", {"betas": (0.9, 1.0)}, r"Adam: betas\[1\] must be a number in \[0.0, 1.0\)"),
        ("Adam", {"betas": (-0.1, 0.9)}, r"betas\[0\] must be"),
        ("Adam", {"betas": 0.9}, r"betas must be a pair"),
        ("AdamW", {"weight_decay": -1}, r"AdamW: weight_decay must be a number >= 0"),
        ("Adam", {"eps": float("nan")}, "eps must be"),
        ("RMSprop", {"alpha": 1.5}, r"RMSprop: alpha must be a number in \[0.0, 1.0\]"),
        ("RMSprop", {"centered": "yes"}, "centered must be True or False"),
        ("SGD", {"lr": 0.1, "nesterov": True}, "nesterov needs momentum > 0"),
        ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "dampening": 0.1}, "dampening = 0"),
        ("SGD", {"lr": 0.1, "momentum": -0.5}, "momentum must be"),
        ("SGD", {"lr": 0.1, "milestones": (3,), "schedule": SCHEDULE}, "either milestones"),
        ("Adam", {"schedule": 0.1}, "schedule must be a function of the epoch"),
    ],
)
def test_bad_hyperparameters(kind, kwargs, message):
    with pytest.raises(sg.ArgumentError, match=message):
        getattr(optim, kind)({"w": np.zeros(2)}, **kwargs)


@pytest.mark.parametrize("kind", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_mismatched_gradients_name_the_parameter(kind):
    W, b = np.ones((3, 2)), np.ones(2)
    opt = getattr(optim, kind)({"W": W, "b": b}, lr=0.1)
    with pytest.raises(sg.ShapeError, match=rf"{kind}.step: the gradient for 'b' has shape \(3,\)"):
        opt.step({"W": np.ones((3, 2)), "b": np.ones(3)})
    with pytest.raises(sg.ArgumentError, match=r"missing \['b'\], unknown \['c'\]"):
        opt.step({"W": np.ones((3, 2)), "c": np.ones(2)})
    np.testing.assert_array_equal(W, np.ones((3, 2)))  # nothing changed
    assert opt.steps == 0


# --- schedules -----------------------------------------------------------------------------


def test_schedule_values():
    lecture = schedules.step()
    assert [lecture(e) for e in (0, 29, 30, 59, 60, 89, 90)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01, 0.001], rel=1e-15
    )
    assert schedules.constant()(123) == 1.0
    assert schedules.exponential(0.9)(10) == pytest.approx(0.9**10, rel=1e-15)
    cos = schedules.cosine(8, min_factor=0.1)
    for e in range(12):
        expected = 0.1 + 0.9 * (1 + math.cos(math.pi * min(e, 8) / 8)) / 2
        assert cos(e) == pytest.approx(expected, rel=1e-15)
    assert cos(0) == 1.0 and cos(8) == pytest.approx(0.1) and cos(4) == pytest.approx(0.55)


def test_schedule_drives_any_optimiser():
    for kind in ("SGD", "Adam", "AdamW", "RMSprop"):
        opt = getattr(optim, kind)({"w": np.zeros(2)}, lr=0.2, schedule=schedules.step((1, 2)))
        rates = []
        for _ in range(3):
            rates.append(opt.lr)
            opt.next_epoch()
        assert rates == pytest.approx([0.2, 0.02, 0.002])
    old = optim.SGD({"w": np.zeros(2)}, lr=0.2, milestones=(1,), factor=0.5)  # the old form
    old.epoch = 1
    assert old.lr == 0.1 and old.milestones == (1,)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: schedules.step((30, -1)), "milestones must be integers >= 0"),
        (lambda: schedules.step(factor=-0.1), "factor must be"),
        (lambda: schedules.exponential(-1), "gamma must be"),
        (lambda: schedules.cosine(0), "epochs must be an integer >= 1"),
        (lambda: schedules.cosine(10, 2.0), "min_factor must be"),
        (lambda: schedules.step()(-1), "epoch, an integer >= 0"),
    ],
)
def test_schedule_errors(make, message):
    with pytest.raises(sg.ArgumentError, match=message):
        make()


def test_schedules_match_torch():
    torch = pytest.importorskip("torch")
    cases = [
        (schedules.step(), lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [30, 60, 90], 0.1)),
        (schedules.exponential(0.95), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.95)),
        (
            schedules.cosine(40, min_factor=0.1),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 40, eta_min=0.1 * 0.5),
        ),
    ]
    for ours, make in cases:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
        scheduler = make(opt)
        for epoch in range(41):
            assert opt.param_groups[0]["lr"] == pytest.approx(
                0.5 * ours(epoch), rel=1e-9, abs=1e-15
            )
            opt.step()
            scheduler.step()
