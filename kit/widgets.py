"""Control panels (sliders, dropdowns) bound to a kit function, with a headless fallback.

``panel(fn, width=slider(50, 500, 300))`` computes ``fn`` at the defaults right away. Displayed in
JupyterLab it shows the controls, a Run button and the figure; headless (papermill, nbval,
``interactive=False`` or ``KIT_INTERACTIVE=0``) it shows the default figure only, never waiting for input.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .validate import check_float

ENV_VAR = "KIT_INTERACTIVE"


@dataclass(frozen=True)
class Slider:
    """A numeric control: ints give an IntSlider, floats a FloatSlider."""

    min: float
    max: float
    value: float
    step: float

    def widget(self, name: str):
        import ipywidgets as w

        numbers = (self.min, self.max, self.value, self.step)
        is_int = all(isinstance(v, int) and not isinstance(v, bool) for v in numbers)
        cls = w.IntSlider if is_int else w.FloatSlider
        return cls(min=self.min, max=self.max, step=self.step, value=self.value, description=name,
                   continuous_update=False, style={"description_width": "initial"})


@dataclass(frozen=True)
class Dropdown:
    """A choice among options."""

    options: tuple
    value: Any

    def widget(self, name: str):
        import ipywidgets as w

        return w.Dropdown(options=list(self.options), value=self.value, description=name,
                          style={"description_width": "initial"})


def slider(min: float, max: float, value: float | None = None, step: float | None = None) -> Slider:
    """A slider from ``min`` to ``max`` (ints for an int slider), starting at ``value`` (default: min)."""
    lo = check_float(min, "min")
    hi = check_float(max, "max")
    if hi <= lo:
        raise ValueError(f"max must be greater than min; got min={min}, max={max}")
    value = min if value is None else value
    check_float(value, "value", low=lo, high=hi)
    if step is None:
        step = 1 if all(isinstance(v, int) for v in (min, max, value)) else (hi - lo) / 100
    check_float(step, "step", low=0.0, low_open=True)
    return Slider(min, max, value, step)


def dropdown(options: Sequence, value: Any = None) -> Dropdown:
    """A dropdown over ``options`` starting at ``value`` (default: the first option)."""
    if isinstance(options, str) or not isinstance(options, Sequence) or not options:
        raise TypeError(f"options must be a non-empty list; got {options!r}")
    value = options[0] if value is None else value
    if value not in options:
        raise ValueError(f"value {value!r} is not among options {list(options)}")
    return Dropdown(tuple(options), value)


def is_interactive() -> bool:
    """True inside a live Jupyter kernel, unless $KIT_INTERACTIVE says otherwise (0/false/no)."""
    flag = os.environ.get(ENV_VAR)
    if flag is not None:
        return flag.strip().lower() not in ("0", "false", "no", "off", "")
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class Panel:
    """Controls bound to ``fn``; ``result`` holds the latest output (computed at the defaults first)."""

    def __init__(self, fn: Callable[..., Any], controls: dict[str, Slider | Dropdown], interactive: bool,
                 title: str | None = None) -> None:
        self.fn = fn
        self.controls = controls
        self.interactive = interactive
        self.title = title
        self.values = {name: c.value for name, c in controls.items()}
        self.result = fn(**self.values)
        self.widgets: dict[str, Any] = {}
        self.button = self.output = None
        if interactive:
            self._build()

    def _build(self) -> None:
        import ipywidgets as w

        self.widgets = {name: c.widget(name) for name, c in self.controls.items()}
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.output = w.Output()
        self.button.on_click(lambda _: self.run(**{k: wd.value for k, wd in self.widgets.items()}))
        with self.output:
            _show(self.result)

    def run(self, **values: Any) -> Any:
        """Recompute ``fn`` with these control values (others keep theirs) and show the result."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; this panel has {sorted(self.controls)}")
        self.values = {**self.values, **values}
        self.result = self.fn(**self.values)
        if self.output is not None:
            self.output.clear_output(wait=True)
            with self.output:
                _show(self.result)
        return self.result

    def _ipython_display_(self) -> None:
        from IPython.display import Markdown, display

        if self.title:
            display(Markdown(f"**{self.title}**"))
        if not self.interactive:
            _show(self.result)
            return
        import ipywidgets as w

        display(w.VBox([w.HBox([*list(self.widgets.values()), self.button]), self.output]))


def _show(result: Any) -> None:
    if result is None:
        return
    from IPython.display import display

    display(result)


def panel(fn: Callable[..., Any], *, interactive: bool | None = None, title: str | None = None,
          **controls: Slider | Dropdown) -> Panel:
    """Bind controls (keyword name -> :func:`slider` / :func:`dropdown`) to ``fn``'s parameters."""
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    if not controls:
        raise ValueError("give at least one control, e.g. width=kit.widgets.slider(50, 500, 300)")
    params = inspect.signature(fn).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, control in controls.items():
        if not isinstance(control, (Slider, Dropdown)):
            raise TypeError(f"control {name!r} must come from kit.widgets.slider or dropdown; "
                            f"got {type(control).__name__}")
        if name not in params and not takes_kwargs:
            raise ValueError(f"control {name!r} is not a parameter of {getattr(fn, '__name__', 'fn')}; "
                             f"its parameters are {list(params)}")
    if interactive is None:
        interactive = is_interactive()
    if not isinstance(interactive, bool):
        raise TypeError(f"interactive must be True, False or None; got {interactive!r}")
    return Panel(fn, dict(controls), interactive, title)
