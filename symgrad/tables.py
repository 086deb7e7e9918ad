"""Tables for the terminal: through rich when it is installed, plain aligned text otherwise."""

from __future__ import annotations

import io


def have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def render(headers, rows, title=None, rich=None) -> str:
    """``rows`` (lists of strings) under ``headers`` as text; ``rich=None`` uses rich if
    installed, ``False`` forces plain text."""
    if rich is None:
        rich = have_rich()
    if rich:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for h in headers:
            table.add_column(h)
        for row in rows:
            table.add_row(*(str(c) for c in row))
        out = io.StringIO()
        Console(file=out, width=160, force_terminal=False, color_system=None).print(table)
        return out.getvalue().rstrip("\n")
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [title] if title else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(cells[0], widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells[1:]]
    return "\n".join(lines)
