"""sg.draw: DOT text with values and gradients; a PNG of sane size when dot is present;
the DOT source and a clear message without it."""

import importlib
import shutil
import struct

import numpy as np
import pytest

import symgrad as sg

draw_module = importlib.import_module("symgrad.draw")  # sg.draw is the function

SLIDE = dict(x=-2.0, y=5.0, z=-4.0)


def slide():
    x, y, z = sg.symbols("x y z")
    return (x + y) * z


def test_dot_carries_values_and_gradients():
    d = sg.draw(slide(), values=SLIDE, grads=True)
    src = d.source
    assert src.startswith("digraph") and "q = x + y" in src and "f = q·z" in src
    # the wire x -> q carries x's value -2 and df/dx = -4; q -> f carries 3 and -4; f: -12, 1
    for value, grad in [(-2, -4), (5, -4), (-4, 3), (3, -4), (-12, 1)]:
        assert f'>{value}</font><br/><font color="{draw_module.GRAD_COLOR}">{grad}<' in src
    plain = sg.draw(slide())
    assert "<font" not in plain.source and "q = x + y" in plain.source


def test_tensors_show_shapes_and_big_graphs_collapse():
    X, W = sg.tensor("X", ("N", 4)), sg.tensor("W", (4, 3))
    y = sg.tensor("y", ("N",), dtype="int64")
    loss = sg.losses.softmax_cross_entropy(X @ W, y)
    rng = np.random.default_rng(0)
    d = sg.draw(
        loss,
        values=dict(X=rng.normal(size=(2, 4)), W=rng.normal(size=(4, 3)), y=np.array([0, 2])),
        grads=True,
    )
    assert "float64(N, 3)" in d.source and "(2, 3) [" in d.source
    chain = sg.tensor("v", (3,))
    for _ in range(30):
        chain = sg.tanh(chain) * 2 + 1
    f = sg.sum(chain)
    full = sg.draw(f, collapse=False).source.count("shape=ellipse")
    collapsed = sg.draw(f).source.count("shape=ellipse")  # > LARGE nodes: collapsed
    assert full > draw_module.LARGE and collapsed <= 3


@pytest.mark.skipif(not shutil.which("dot"), reason="Graphviz's dot is not installed")
def test_png_is_rendered_with_a_sane_size(tmp_path):
    path = tmp_path / "slide.png"
    d = sg.draw(slide(), values=SLIDE, grads=True, path=path)
    data = path.read_bytes()
    assert d.path == path and data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 200 < width < 2000 and 80 < height < 1000
    assert d._repr_svg_().lstrip().startswith("<?xml")
    pytest.importorskip("graphviz")
    assert d.graphviz().pipe(format="svg").lstrip().startswith(b"<?xml")


def test_without_dot_the_source_and_a_message(monkeypatch, tmp_path):
    monkeypatch.setattr(draw_module.shutil, "which", lambda name: None)
    d = sg.draw(slide())
    assert "not found" in d.message and d.source.startswith("digraph")
    with pytest.warns(UserWarning, match="dot"):
        d = sg.draw(slide(), path=tmp_path / "slide.png")
    assert d.path == tmp_path / "slide.dot" and d.path.read_text() == d.source
