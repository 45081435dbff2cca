"""kit.show: the source of a kit function, class or method, plain when headless and highlighted in a kernel."""

from __future__ import annotations

import inspect

import pytest

import kit
from kit import source as source_mod
from kit.frankwolfe import KSupportBall
from kit.soups import greedy_soup


def test_source_names_the_file_and_line_and_gives_the_code():
    where, text = source_mod.source(greedy_soup)
    lines, start = inspect.getsourcelines(greedy_soup)
    assert where == f"kit/soups/merging.py:{start}"
    assert text == "".join(lines) and text.startswith("def greedy_soup(")


def test_methods_and_classes_are_shown_dedented():
    where, text = source_mod.source(KSupportBall.lmo)  # inherited: the Constraint method
    assert where.startswith("kit/frankwolfe/constraints.py:") and text.startswith("def lmo(")
    _, cls = source_mod.source(KSupportBall)
    assert cls.startswith("class KSupportBall(") and "def _lmo" in cls


def test_show_prints_plain_text_outside_a_kernel(capsys):
    kit.show(greedy_soup)
    out = capsys.readouterr().out
    assert out.startswith("# kit/soups/merging.py:") and "def greedy_soup(" in out and "<span" not in out


def test_show_sends_highlighted_html_and_plain_text_in_a_kernel(monkeypatch):
    shown = []
    monkeypatch.setattr(source_mod, "_in_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda bundle, raw: shown.append((bundle, raw)))
    kit.show(greedy_soup)
    (bundle, raw), = shown
    assert raw is True and "def greedy_soup(" in bundle["text/plain"]
    html = bundle["text/html"]
    assert "kit/soups/merging.py" in html and "<span" in html and "greedy_soup" in html  # pygments markup


@pytest.mark.parametrize("thing", [3, "greedy_soup", len])
def test_show_rejects_what_has_no_python_source(thing):
    with pytest.raises(TypeError, match=r"show takes|no Python source"):
        kit.show(thing)
