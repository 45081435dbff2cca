"""kit.widgets: panels bound to functions, headless fallback, and the Run button."""

from __future__ import annotations

import ipywidgets
import pytest

from kit import widgets


def area(width: int = 1, height: float = 1.0, shape: str = "rect"):
    return width * height * (0.5 if shape == "triangle" else 1.0)


def test_headless_panel_computes_defaults_once_and_builds_no_controls():
    calls = []

    def fn(width=3, shape="rect"):
        calls.append((width, shape))
        return area(width, 2.0, shape)

    p = widgets.panel(fn, interactive=False, width=widgets.slider(1, 10, 4),
                      shape=widgets.dropdown(["rect", "triangle"], "triangle"))
    assert calls == [(4, "triangle")]
    assert p.result == 4.0
    assert p.widgets == {} and p.button is None


def test_interactive_panel_runs_with_the_controls_values():
    p = widgets.panel(area, interactive=True, width=widgets.slider(1, 10, 2), height=widgets.slider(0.0, 5.0, 1.5),
                      shape=widgets.dropdown(["rect", "triangle"]))
    assert p.result == 3.0
    assert isinstance(p.widgets["width"], ipywidgets.IntSlider)
    assert isinstance(p.widgets["height"], ipywidgets.FloatSlider)
    assert isinstance(p.widgets["shape"], ipywidgets.Dropdown)
    p.widgets["width"].value = 6
    p.widgets["shape"].value = "triangle"
    p.button.click()
    assert p.result == 6 * 1.5 * 0.5
    assert p.values == {"width": 6, "height": 1.5, "shape": "triangle"}


def test_run_keeps_other_values_and_rejects_unknown_controls():
    p = widgets.panel(area, interactive=False, width=widgets.slider(1, 10, 2), height=widgets.slider(1, 5, 3))
    assert p.run(width=5) == 15
    with pytest.raises(ValueError, match="unknown control"):
        p.run(depth=3)


def test_is_interactive_follows_the_environment(monkeypatch):
    monkeypatch.setenv("KIT_INTERACTIVE", "0")
    assert widgets.is_interactive() is False
    monkeypatch.setenv("KIT_INTERACTIVE", "1")
    assert widgets.is_interactive() is True
    monkeypatch.delenv("KIT_INTERACTIVE")
    assert widgets.is_interactive() is False  # plain Python, no kernel


@pytest.mark.parametrize(("make", "match"), [
    (lambda: widgets.slider(5, 1), "greater than min"),
    (lambda: widgets.slider(0, 1, 2), "value"),
    (lambda: widgets.slider(0, 1, 0.5, step=0), "step"),
    (lambda: widgets.dropdown([]), "options"),
    (lambda: widgets.dropdown(["a"], "b"), "not among options"),
    (lambda: widgets.panel(area, interactive=False, depth=widgets.slider(1, 2)), "not a parameter"),
    (lambda: widgets.panel(area, interactive=False, width=(1, 2)), "kit.widgets.slider"),
    (lambda: widgets.panel(area, interactive=False), "at least one control"),
    (lambda: widgets.panel("area", width=widgets.slider(1, 2)), "callable"),
    (lambda: widgets.panel(area, interactive="yes", width=widgets.slider(1, 2)), "interactive"),
])
def test_bad_input_is_rejected_before_any_work(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
