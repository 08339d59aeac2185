"""Every markdown link to a heading in README.md and docs/*.md leads to a heading that exists.

docs/performance.md's "Current figures" links each figure to the section it comes from, and
other docs link into it; sections are appended and moved session after session, so a renamed
heading would silently break those links. Anchors follow GitHub's rule (lower case, punctuation
dropped, spaces to hyphens, ``-1``, ``-2`` ... for repeats); headings inside fenced code do not
count.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_HEADING = re.compile(r"^(#{1,6}) +(.*?) *$")
_LINK = re.compile(r"\]\(([^)\s#]*)#([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of every heading of a markdown text, outside fenced code."""
    seen: dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            base = slug(match[2])
            seen[base] = seen.get(base, 0) + 1
    found = set()
    for base, count in seen.items():
        found.add(base)
        found.update(f"{base}-{n}" for n in range(1, count))
    return found


def broken_links() -> list[str]:
    """``file: target#anchor`` for every heading link whose heading does not exist."""
    known = {doc: anchors(doc.read_text()) for doc in DOCS}
    broken = []
    for doc in DOCS:
        for target, anchor in _LINK.findall(doc.read_text()):
            path = Path(os.path.normpath(doc.parent / target)) if target else doc
            if path not in known:
                continue  # a link into a file that is not a doc (source, another repo)
            if anchor not in known[path]:
                broken.append(f"{doc.relative_to(REPO)}: {target}#{anchor}")
    return broken


def test_heading_links_resolve() -> None:
    performance = (REPO / "docs" / "performance.md").read_text()
    assert len(_LINK.findall(performance)) > 40  # the current figures link to their sections
    assert broken_links() == []


def test_a_renamed_heading_is_caught() -> None:
    text = (REPO / "docs" / "performance.md").read_text()
    assert "several-viewers-issue-6" in anchors(text)
    assert "several-viewers-issue-6" not in anchors(text.replace("(issue 6)", "(issue six)"))
    heading = "Capture → diff → encode pipeline (issue 2)"
    assert slug(heading) == "capture--diff--encode-pipeline-issue-2"
    assert anchors("# A\n```\n# B\n```\n# A\n") == {"a", "a-1"}
