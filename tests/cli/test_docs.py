"""The docs: the generated reference pages are current, the README stays short and its links lead
somewhere."""

import re
from pathlib import Path

import pytest

from attnbench.cli.docs import DOCS, PAGES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(PAGES))
def test_generated_reference_pages_are_current(name):
    assert (DOCS / name).read_text() == PAGES[name](), f"docs/{name} is stale: run python -m attnbench.cli.docs"


def test_the_readme_is_short_and_its_links_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert local and all((ROOT / link).exists() for link in local), [link for link in local
                                                                     if not (ROOT / link).exists()]
    for page in DOCS.glob("*.md"):
        for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            assert "://" in link or (page.parent / link).exists(), f"{page.name}: {link}"
