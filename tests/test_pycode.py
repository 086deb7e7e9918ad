"""Generated Python functions are compiled once per text, and travel with warm records."""

import builtins

from symgrad import pycode

SOURCE = "def twice(x):\n    return 2 * x\n"


def counting(monkeypatch) -> list:
    calls, python_compile = [], builtins.compile

    def counted(source, filename, *args, **kwargs):
        calls.append(filename)
        return python_compile(source, filename, *args, **kwargs)

    monkeypatch.setattr(builtins, "compile", counted)
    return calls


def test_a_text_is_compiled_once_per_process(monkeypatch):
    monkeypatch.setattr(pycode, "_codes", type(pycode._codes)())
    calls = counting(monkeypatch)
    one = pycode.function(SOURCE, "<test twice>", "twice", {})
    two = pycode.function(SOURCE, "<test twice>", "twice", {})
    assert one(3) == two(3) == 6 and one is not two  # each its own function, one compile
    assert calls == ["<test twice>"]


def test_saved_code_is_not_compiled_again(monkeypatch):
    made = pycode.function(SOURCE, "<test twice>", "twice", {})
    data = pycode.saved([made, print])  # a function it did not make is left out
    # as a new process: nothing compiled yet, only the record's code
    monkeypatch.setattr(pycode, "_codes", type(pycode._codes)())
    monkeypatch.setattr(pycode, "_remembered", type(pycode._remembered)())
    pycode.remember(data)
    calls = counting(monkeypatch)
    assert pycode.function(SOURCE, "<test twice>", "twice", {})(4) == 8
    assert calls == []
    # the code is found by its text: another text is compiled
    assert pycode.function(SOURCE.replace("2 *", "3 *"), "<test twice>", "twice", {})(4) == 12
    assert calls == ["<test twice>"]


def test_anything_else_is_not_remembered(monkeypatch):
    monkeypatch.setattr(pycode, "_remembered", type(pycode._remembered)())
    for data in (b"", b"garbage", pycode.marshal.dumps({"k": 1}), pycode.marshal.dumps([1])):
        pycode.remember(data)
    assert not pycode._remembered


def test_the_kept_code_is_bounded(monkeypatch):
    monkeypatch.setattr(pycode, "_codes", type(pycode._codes)())
    monkeypatch.setattr(pycode, "CAPACITY", 3)
    for k in range(5):
        assert pycode.function(f"def f():\n    return {k}\n", "<test f>", "f", {})() == k
    assert len(pycode._codes) == 3
