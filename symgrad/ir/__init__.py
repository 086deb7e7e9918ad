"""The intermediate representation: nodes, shapes, dtypes, traversal and printing."""

from .graph import consumers, inputs_of, to_text, toposort
from .node import Node, intern

__all__ = ["Node", "intern", "toposort", "consumers", "inputs_of", "to_text"]
