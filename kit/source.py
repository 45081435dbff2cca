"""Visible algorithms: ``kit.show(fn)`` prints the source of a kit function, class or method in a notebook.

In a Jupyter kernel the source comes as a display bundle: syntax-highlighted HTML (what JupyterLab
and the HTML reports show) with a plain-text copy (what text front ends show); anywhere else
(a script, a console) it is printed as plain text. A header names the file and line, so a reader
can open the module and read on.
"""

from __future__ import annotations

import html
import inspect
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _unwrap(obj: Any) -> Any:
    obj = inspect.unwrap(obj) if callable(obj) else obj
    return getattr(obj, "__func__", obj)  # bound and class methods: the function itself


def source(obj: Any) -> tuple[str, str]:
    """(``path:line``, source text) of a function, class, method or module, dedented."""
    target = _unwrap(obj)
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.ismethod(target)
            or inspect.ismodule(target)):
        raise TypeError(f"show takes a function, class, method or module; got {type(obj).__name__} {obj!r}")
    try:
        lines, start = inspect.getsourcelines(target)
        path = Path(inspect.getsourcefile(target) or "?").resolve()
    except (OSError, TypeError) as err:
        raise TypeError(f"no Python source for {obj!r} (built in or compiled): {err}") from err
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f"{where}:{max(start, 1)}", textwrap.dedent("".join(lines))


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _highlighted(where: str, text: str) -> str:
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:  # pygments comes with JupyterLab; without it, an unhighlighted block
        body = f"<pre>{html.escape(text)}</pre>"
    else:
        formatter = HtmlFormatter(noclasses=True, style="default")
        body = highlight(text, PythonLexer(), formatter)
    return (f'<details open><summary><code>{html.escape(where)}</code></summary>'
            f'<div style="font-size: 0.85em">{body}</div></details>')


def show(obj: Any) -> None:
    """Show the source of ``obj`` (a kit function, class, method or module): highlighted in a notebook, else printed."""
    where, text = source(obj)
    plain = f"# {where}\n{text}"
    if _in_kernel():
        from IPython.display import display

        display({"text/plain": plain, "text/html": _highlighted(where, text)}, raw=True)
    else:
        print(plain)


__all__ = ["show", "source"]
