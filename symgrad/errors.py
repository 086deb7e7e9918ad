"""The errors symgrad raises for what a user passed.

Every one derives from :class:`SymgradError` and from the built-in exception that fits
(``ValueError`` for a bad value or shape, ``TypeError`` for a bad type or keyword), so
``except ValueError`` in user code keeps working.  Messages name the input and say what
was expected.
"""


class SymgradError(Exception):
    """Base class of every error caused by a user's graph or inputs."""


class ShapeError(SymgradError, ValueError):
    """Shapes that contradict each other or the declared dims."""


class DTypeError(SymgradError, TypeError):
    """A dtype that an op or a declared input does not accept."""


class ArgumentError(SymgradError, TypeError):
    """A missing, unknown or malformed argument (keyword, axis, option)."""


class LabelError(SymgradError, ValueError):
    """An integer label outside ``[0, C)``."""


class GraphError(SymgradError, ValueError):
    """A graph that cannot be differentiated, converted or compiled as asked."""


class GradientCheckError(SymgradError, AssertionError):
    """A derived gradient that disagrees with finite differences (``sg.check_grad``).

    Also an ``AssertionError``, so a failed check inside a test reads as a failed assertion.
    """


class CompileError(SymgradError, RuntimeError):
    """A kernel that could not be built (the background compile of ``backend="auto"``)."""
