"""Builds the web view's fallback fonts (screens/cli/fonts/) from Debian's font packages.

    apt-get install fonts-dejavu-core fonts-noto-color-emoji
    .venv/bin/python -m tests.web_fonts

Roboto Mono (textual-serve's font) has none of the UI's arrows, boxes, blocks, marks or
emoji. Each face here is a subset of a free font holding only what Roboto Mono lacks: the
glyphs the UI emits (screens.widgets.glyphs.ui_glyphs) and, in the monospaced face, the whole
Unicode blocks such glyphs come from (a new arrow or box needs no rebuild). faces.json lists
each face's file and the characters it holds, for the page's unicode-range (web_server.py).
Run it again after adding a glyph that tests/console/servers/test_web_fonts.py says is missing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

from screens.widgets.glyphs import ui_glyphs
from tests.conftest import ROOT

FONTS = ROOT / "screens" / "cli" / "fonts"
ROBOTO_MONO = "textual_serve/static/fonts/RobotoMono-VariableFont_wght.ttf"
SYSTEM_FONTS = Path("/usr/share/fonts/truetype")
# Unicode blocks a terminal UI draws with: punctuation, arrows, technical symbols (⏎ ⌫), box
# drawing, blocks, geometric shapes, symbols, dingbats, braille (spinners).
BLOCKS = [
    (0x2010, 0x2027),
    (0x2190, 0x21FF),
    (0x2300, 0x23FF),
    (0x2500, 0x25FF),
    (0x2600, 0x26FF),
    (0x2700, 0x27BF),
    (0x2800, 0x28FF),
]


@dataclass(frozen=True)
class Face:
    file: str  # in screens/cli/fonts/
    source: str  # under /usr/share/fonts/truetype/
    package: str  # the Debian package that installs it
    licence: str  # its licence file, copied beside it
    blocks: bool  # also the whole BLOCKS it has (not only the UI's glyphs)


# In order: a character goes to the first face that has it.
FACES = [
    Face("DejaVuSansMono-Symbols.woff", "dejavu/DejaVuSansMono.ttf", "fonts-dejavu-core",
         "LICENSE-DejaVu.txt", blocks=True),
    Face("DejaVuSans-Symbols.woff", "dejavu/DejaVuSans.ttf", "fonts-dejavu-core",
         "LICENSE-DejaVu.txt", blocks=False),
    Face("NotoColorEmoji-Symbols.woff", "noto/NotoColorEmoji.ttf", "fonts-noto-color-emoji",
         "LICENSE-NotoColorEmoji.txt", blocks=False),
]  # fmt: skip


def cmap(path: Path) -> set[int]:
    """The code points a font file maps to a glyph."""
    return set(TTFont(path).getBestCmap())


def roboto_mono() -> Path:
    import textual_serve

    return Path(textual_serve.__file__).parent.parent / ROBOTO_MONO


def build() -> list[dict[str, object]]:
    """Write each face's subset and licence to FONTS, and faces.json; return its entries."""
    wanted = {ord(char) for char in ui_glyphs()}
    blocks = {point for first, last in BLOCKS for point in range(first, last + 1)}
    taken = cmap(roboto_mono())
    entries: list[dict[str, object]] = []
    for face in FACES:
        source = SYSTEM_FONTS / face.source
        points = (wanted | (blocks if face.blocks else set())) & cmap(source) - taken
        _subset(source, points, FONTS / face.file)
        shutil.copyfile(Path("/usr/share/doc") / face.package / "copyright", FONTS / face.licence)
        taken |= points
        entries.append({"file": face.file, "unicode_range": unicode_range(points)})
    (FONTS / "faces.json").write_text(json.dumps(entries, indent=1) + "\n")
    return entries


def _subset(source: Path, points: set[int], target: Path) -> None:
    options = subset.Options()
    options.flavor = "woff"
    options.layout_features = []  # a terminal draws one character per cell: no shaping
    options.name_IDs = ["*"]  # keep the copyright and licence names
    options.notdef_outline = True
    options.hinting = False  # browsers draw these sizes unhinted: half the bytes
    font = TTFont(source, recalcTimestamp=False)  # the same files from the same sources
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(points))
    subsetter.subset(font)
    font.flavor = "woff"
    font.save(target, reorderTables=True)


def unicode_range(points: Iterable[int]) -> str:
    """CSS's unicode-range for a set of code points: U+2190-21FF, U+25CB, ..."""
    spans: list[list[int]] = []
    for point in sorted(points):
        if spans and spans[-1][1] == point - 1:
            spans[-1][1] = point
        else:
            spans.append([point, point])
    return ", ".join(
        f"U+{first:X}" if first == last else f"U+{first:X}-{last:X}" for first, last in spans
    )


def unicode_range_points(text: str) -> set[int]:
    """The code points of a unicode-range written by unicode_range."""
    points: set[int] = set()
    for span in text.split(","):
        first, _, last = span.strip().removeprefix("U+").partition("-")
        points.update(range(int(first, 16), int(last or first, 16) + 1))
    return points


if __name__ == "__main__":
    FONTS.mkdir(exist_ok=True)
    for entry in build():
        size = (FONTS / str(entry["file"])).stat().st_size
        print(f"{entry['file']}: {size} bytes, {entry['unicode_range']}")
