"""The intermediate representation: nodes, shapes, dtypes, traversal, printing and
serialisation."""

from . import serialize  # noqa: F401 - makes nodes pickle as flat graphs
from .graph import consumers, inputs_of, to_text, toposort
from .node import Node, intern

__all__ = ["Node", "intern", "toposort", "consumers", "inputs_of", "to_text"]
