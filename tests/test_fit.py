"""sg.nn.fit: minibatches, reproducibility, the NaN stop, accuracy, the progress bar, History."""

import re

import numpy as np
import pytest

import symgrad as sg

nn, optim = sg.nn, sg.nn.optim

X = sg.tensor("X", ("N", 2))
Y = sg.tensor("y", ("N",), dtype="int64")
MODEL = nn.MLP([2, 8, 3], activation="tanh")
SCORES = MODEL(X)
LOSS = sg.losses.softmax_cross_entropy(SCORES, Y) + 1e-3 * sg.losses.l2(MODEL.params["W1"])


def blobs(seed, n=300):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    return {"X": centres[y] + rng.standard_normal((n, 2)), "y": y}


def train(seed=0, epochs=4, backend="numpy", **kwargs):
    values = MODEL.init(seed=1)
    opt = optim.SGD(values, lr=0.1, momentum=0.9)
    history = nn.fit(
        LOSS,
        MODEL.params,
        blobs(0),
        opt,
        epochs,
        batch_size=64,
        seed=seed,
        backend=backend,
        scores=SCORES,
        labels=Y,
        val_data=blobs(1),
        **kwargs,
    )
    return history, values


def test_fit_records_and_learns():
    history, values = train(epochs=6)
    assert history.epochs == list(range(6)) and history.steps == 6 * 5  # ceil(300 / 64) = 5
    assert len(history.loss) == len(history.val_loss) == len(history.val_accuracy) == 6
    assert history.loss[-1] < history.loss[0]
    assert history.val_accuracy[-1] > 0.9
    # the recorded accuracy is the compiled scores' argmax at the final parameters
    val = blobs(1)
    scores = sg.compile(SCORES, backend="numpy")(X=val["X"], **values)
    assert history.val_accuracy[-1] == np.mean(np.argmax(scores, axis=1) == val["y"])
    assert history.val_loss[-1] == pytest.approx(
        sg.compile(LOSS, backend="numpy")(X=val["X"], y=val["y"], **values), rel=1e-12
    )
    assert "6 epochs, 30 steps" in repr(history)


def test_fit_is_reproducible_from_the_seed(backend):
    first, values = train(seed=5, backend=backend)
    second, values2 = train(seed=5, backend=backend)
    assert first.loss == second.loss and first.val_accuracy == second.val_accuracy
    for k in values:
        np.testing.assert_array_equal(values[k], values2[k])
    other, _ = train(seed=6, backend=backend)
    assert other.loss != first.loss


def test_fit_is_the_slides_loop():
    """fit == the hand loop: minibatches from default_rng(seed), one SGD step per batch."""
    data, values = blobs(0), MODEL.init(seed=1)
    by_hand = {k: v.copy() for k, v in values.items()}
    schedule = nn.schedules.step((1,), 0.5)
    nn.fit(
        LOSS,
        MODEL.params,
        data,
        optim.SGD(values, lr=0.2, schedule=schedule),
        2,
        batch_size=100,
        seed=3,
        backend="numpy",
    )
    vg = sg.value_and_grad(LOSS, MODEL.params, backend="numpy")
    rng = np.random.default_rng(3)
    for epoch in range(2):
        for rows in optim.minibatches(300, 100, rng):
            _, grads = vg(X=data["X"][rows], y=data["y"][rows], **by_hand)
            for k in by_hand:
                by_hand[k] -= 0.2 * schedule(epoch) * grads[k]
    for k in values:
        np.testing.assert_array_equal(values[k], by_hand[k])


def test_nan_stop_names_the_step_and_leaves_the_parameters():
    """A diverging run: the error names the epoch and step, the parameters are the ones
    before that step (a replay of the run by hand stops at the same parameters)."""
    w = sg.tensor("w", (2,))
    loss = sg.mean((X @ w) ** 2)
    data = {"X": np.random.default_rng(0).standard_normal((40, 2)) * 10}
    w0 = np.array([1.0, -1.0])
    values = {"w": w0.copy()}
    with pytest.raises(nn.TrainingError) as info:
        nn.fit(loss, {"w": w}, data, optim.SGD(values, lr=1.0), 100, batch_size=16, backend="numpy")
    message = str(info.value)
    found = re.search(
        r"the loss is (inf|nan) at epoch (\d+), step (\d+) of the epoch \(step (\d+)", message
    )
    assert found, message
    epoch, index, overall = map(int, found.groups()[1:])
    assert overall == 3 * epoch + index and "as they were before this step" in message
    assert (info.value.epoch, info.value.step) == (epoch, index)
    assert len(info.value.history.loss) == epoch  # the epochs completed
    assert np.all(np.isfinite(values["w"]))
    # replay by hand
    vg = sg.value_and_grad(loss, w, backend="numpy")
    hand, rng, steps = w0.copy(), np.random.default_rng(0), 0
    while steps < overall:
        for rows in optim.minibatches(40, 16, rng):
            if steps == overall:
                break
            hand -= 1.0 * vg(X=data["X"][rows], w=hand)[1]
            steps += 1
    np.testing.assert_array_equal(values["w"], hand)


def test_nan_in_the_data_stops_in_the_first_epoch():
    data = blobs(0)
    data["X"][17, 1] = np.nan
    values = MODEL.init(seed=1)
    before = {k: v.copy() for k, v in values.items()}
    with pytest.raises(nn.TrainingError, match=r"the loss is nan at epoch 0, step \d+"):
        nn.fit(LOSS, MODEL.params, data, optim.Adam(values), 3, batch_size=300, backend="numpy")
    for k in values:  # one batch: the first step failed, nothing changed
        np.testing.assert_array_equal(values[k], before[k])


def test_progress_bar_off_when_asked_or_not_a_terminal(capsys):
    pytest.importorskip("tqdm")
    train(epochs=1, progress=False)
    assert capsys.readouterr().err == ""
    train(epochs=1)  # progress=None: stderr is pytest's capture, not a terminal
    assert capsys.readouterr().err == ""
    train(epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "10/10" in err and "step" in err


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    history, _ = train(epochs=2)
    path = tmp_path / "curves.png"
    fig = history.plot(path, title="blobs")
    assert len(fig.axes) == 2 and path.stat().st_size > 5000
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"params": {"W1": MODEL.params["W1"]}}, sg.ArgumentError, "optimizer's parameters"),
        (
            {"data": {"X": np.zeros((5, 2)), "y": np.zeros(4, dtype=int)}},
            sg.ShapeError,
            r"data\['y'\] has 4 rows but data\['X'\] has 5",
        ),
        ({"labels": "labels"}, sg.ArgumentError, "labels must name an entry of data"),
        ({"epochs": -1}, sg.ArgumentError, "epochs must be an integer >= 0"),
        ({"val_data": {"X": np.zeros((5, 2))}}, sg.ArgumentError, "val_data has no labels 'y'"),
        ({"batch_size": 0}, sg.ArgumentError, "batch_size must be an integer >= 1"),
        ({"optimizer": "sgd"}, sg.ArgumentError, "optimizer must be"),
        ({"params": {"h": SCORES}}, sg.ArgumentError, r"params\['h'\] must be an input tensor"),
    ],
)
def test_fit_errors(change, error, message):
    values = MODEL.init(seed=1)
    args = {
        "loss": LOSS,
        "params": MODEL.params,
        "data": blobs(0),
        "optimizer": optim.SGD(values, lr=0.1),
        "epochs": 1,
        "scores": SCORES,
        "labels": Y,
        "backend": "numpy",
    }
    args.update(change)
    with pytest.raises(error, match=message):
        nn.fit(**args)
