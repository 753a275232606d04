"""docs/findings.md says what the committed summaries say: ``python docs/findings.py --check`` passes, and fails
when a number, a table or a figure of the document no longer matches them."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def findings():
    spec = importlib.util.spec_from_file_location("findings_doc", DOCS / "findings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def computed(findings):
    return findings.compute()


def test_document_matches_the_summaries(findings, capsys):
    assert findings.main(["--check"]) == 0, capsys.readouterr().err


def test_check_fails_on_a_changed_number_or_table(findings, computed):
    text = findings.DOC.read_text()
    new, problems = findings.render(text, computed)
    assert problems == [] and new == text
    match = next(findings.VALUE.finditer(text))
    changed = text[: match.start(2)] + "9.999" + text[match.end(2) :]
    assert any(match.group(1) in p for p in findings.render(changed, computed)[1])
    name = next(iter(computed.blocks))
    changed = text.replace(f"<!--block:{name}-->\n", f"<!--block:{name}-->\nextra line\n", 1)
    assert any(name in p for p in findings.render(changed, computed)[1])
    unknown = text + "\n<!--v:no.such.value-->1<!--/v-->\n"
    assert any("no.such.value" in p for p in findings.render(unknown, computed)[1])


def test_check_fails_on_a_figure_drawn_from_other_data(findings, computed, tmp_path, monkeypatch):
    if not computed.figures:
        pytest.skip("no figure yet: the summaries they are drawn from are not committed")
    name, (draw, _) = next(iter(computed.figures.items()))
    figures = tmp_path / "figures"
    shutil.copytree(findings.FIGURES, figures)
    monkeypatch.setattr(findings, "FIGURES", figures)
    assert findings.check_figures(computed) == []
    draw(figures / f"{name}.png", "0" * 16)
    assert any(name in p for p in findings.check_figures(computed))
