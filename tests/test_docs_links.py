"""Every relative link and image in README.md and docs/ resolves, anchors included.

The README is the front door and docs/ holds the depth, one file per topic; a moved
heading or a renamed file must fail here, not in front of a newcomer. Links to other
sites are not fetched. Anchors follow GitHub's rule for heading ids: the heading's text,
lower-cased, with punctuation dropped (letters of any script, digits, `_`, `-` and spaces
kept), spaces turned into hyphens, and `-1`, `-2` ... added to repeats.

Plain file reads: no database, no Django.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
# ](target) or ](target "title"), for links and images alike; <target> allowed.
INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
HTML_ID = re.compile(r"""<[^>]+\s(?:id|name)=["']([^"']+)["']""")
EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def outside_fences(text: str) -> list[str]:
    """The text's lines, with those of fenced code blocks (fences included) blanked."""
    kept, fence = [], None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            kept.append("")
            continue
        kept.append("" if fence else line)
    return kept


def prose(text: str) -> str:
    """The text outside fenced code blocks and code spans (where a `](x)` is not a link)."""
    return CODE_SPAN.sub("", "\n".join(outside_fences(text)))


def github_slug(heading: str) -> str:
    # What GitHub renders: a link's text without its target, no emphasis or code marks
    # (those are punctuation, dropped below anyway).
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in " -_" or category[0] in "LMN":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The ids GitHub gives a file's headings (with -1, -2 for repeats), and explicit HTML ids."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in outside_fences(path.read_text(encoding="utf-8")):
        h = HEADING.match(line)
        if h:
            slug = github_slug(h.group(2))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
        found.update(HTML_ID.findall(line))
    return found


def links(path: Path) -> list[str]:
    text = prose(path.read_text(encoding="utf-8"))
    return INLINE_LINK.findall(text) + REFERENCE_DEF.findall(text)


def broken_links(files: list[Path], root: Path = ROOT) -> list[str]:
    problems = []
    for source in files:
        where = source.relative_to(root)
        for target in links(source):
            if not target or EXTERNAL.match(target):
                continue
            raw_path, _, fragment = target.partition("#")
            resolved = (source.parent / unquote(raw_path)).resolve() if raw_path else source
            if raw_path:
                if not resolved.is_relative_to(root):
                    problems.append(f"{where}: {target} points outside the repository")
                    continue
                if not resolved.exists():
                    problems.append(f"{where}: {target} (no such file: {resolved.relative_to(root)})")
                    continue
            if fragment:
                if resolved.suffix != ".md" or not resolved.is_file():
                    problems.append(f"{where}: {target} (an anchor into something that is not a markdown file)")
                elif unquote(fragment) not in anchors(resolved):
                    problems.append(f"{where}: {target} (no heading with that id in {resolved.relative_to(root)})")
    return problems


def test_every_relative_link_and_image_resolves():
    problems = broken_links(markdown_files())
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_links_every_docs_page():
    linked = {
        (ROOT / unquote(t.partition("#")[0])).resolve()
        for t in links(ROOT / "README.md")
        if t and not EXTERNAL.match(t) and not t.startswith("#")
    }
    unlinked = [str(p.relative_to(ROOT)) for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    top = "\n".join(lines[:40])
    assert "make demo" in top and "make test" in top
    assert len(lines) <= 400


def test_github_slugs():
    assert github_slug("The caregiver's pages (`/voice/`)") == "the-caregivers-pages-voice"
    assert github_slug("The result cache (`voice_tts/result_cache.py`)") == "the-result-cache-voice_ttsresult_cachepy"
    assert github_slug("GPT-SoVITS: voice cloning on the GPU worker") == "gpt-sovits-voice-cloning-on-the-gpu-worker"
    assert github_slug("The Pi: `audio_format`") == "the-pi-audio_format"
    assert github_slug("알림 추가: 시간과 요일") == "알림-추가-시간과-요일"
    assert github_slug("See [the API](api.md) too") == "see-the-api-too"


def test_a_broken_link_is_caught(tmp_path):
    # The checker itself: a missing file, a missing anchor (here and in another page), a path out of
    # the tree, and code that only looks like a link.
    (tmp_path / "other.md").write_text("# Other page\n\n## 알림 추가\n", encoding="utf-8")
    (tmp_path / "shot.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Same\n\n## Same\n\n"
        "[ok](other.md#알림-추가) [ok](#same-1) [ok](#title) ![ok](shot.png) [ok](https://example.org/x.md#y)\n"
        "[gone](nowhere.md) ![gone](missing.png) [bad anchor](#no-such-heading)\n"
        "[bad anchor](other.md#no-such-heading) [out](../../etc/passwd)\n"
        "`[not a link](nowhere.md)`\n```\n[not a link](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    problems = broken_links([page], root=tmp_path)
    assert len(problems) == 5, problems
    assert sum("nowhere.md" in p for p in problems) == 1
    assert any("missing.png" in p for p in problems)
    assert sum("no-such-heading" in p for p in problems) == 2
    assert any("outside the repository" in p for p in problems)
