"""The web view's fonts: every glyph the UI emits is in Roboto Mono or a served fallback face,
each face's unicode-range is what its file holds, and the fonts ship with their licences."""

from __future__ import annotations

import fnmatch
import json
import tomllib
import unicodedata

from screens.cli.web_server import FONTS, local_fonts
from screens.widgets.format import HEALTH_GLYPHS, LOCK, MARK_GLYPHS
from screens.widgets.glyphs import _literals, _non_ascii, ui_glyphs
from tests.conftest import ROOT
from tests.web_fonts import cmap, roboto_mono, unicode_range, unicode_range_points

FACES = json.loads((FONTS / "faces.json").read_text())


def _named(points: set[int]) -> list[str]:
    return [f"{chr(p)} U+{p:04X} {unicodedata.name(chr(p), '?')}" for p in sorted(points)]


def test_the_served_fonts_cover_every_glyph_the_ui_emits() -> None:
    covered = cmap(roboto_mono())
    for face in FACES:
        covered |= cmap(FONTS / face["file"])
    missing = {ord(glyph) for glyph in ui_glyphs()} - covered
    assert not missing, (
        f"no served font draws {_named(missing)}: rebuild them (python -m tests.web_fonts)"
    )


def test_each_face_is_given_just_the_characters_its_file_holds_and_roboto_mono_lacks() -> None:
    taken = cmap(roboto_mono())
    for face in FACES:
        holds = cmap(FONTS / face["file"])
        assert unicode_range_points(face["unicode_range"]) == holds, face["file"]
        assert unicode_range(holds) == face["unicode_range"]
        assert not holds & taken, (face["file"], _named(holds & taken))
        taken |= holds
    # The page declares each face, upright and italic, with that range.
    css = local_fonts()
    for face in FACES:
        assert css.count(f"unicode-range: {face['unicode_range']};") == 2, face["file"]


def test_the_glyph_list_has_the_marks_the_footer_keys_borders_and_scrollbars() -> None:
    glyphs = ui_glyphs()
    assert set(MARK_GLYPHS.values()) | set(HEALTH_GLYPHS.values()) - {"?"} <= glyphs
    assert {LOCK, "·", "…"} <= glyphs
    assert {"⏎", "↑", "↓", "⇧"} <= glyphs  # the footer's keys (Textual's names and the keymap's)
    assert {"━", "┃", "┏", "╭", "─", "═"} <= glyphs  # borders
    assert {"▁", "▇", "▉", "▏"} <= glyphs  # scrollbars
    assert "🔎" in glyphs  # the command palette's
    assert all(ord(glyph) > 0x7E for glyph in glyphs)


def test_a_glyph_in_any_string_of_the_ui_joins_the_list_but_docstrings_do_not() -> None:
    source = '''"""A module ✓ docstring."""
LABEL = "⚑ flagged"


def shown() -> str:
    """Not shown ✓."""
    return f"{LABEL} ⧗ {1}"
'''
    assert _non_ascii(_literals(source)) == {"⚑", "⧗"}


def test_the_fonts_ship_with_their_licences_as_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    assert "screens.cli.fonts" in setuptools["packages"]
    patterns = setuptools["package-data"]["screens.cli.fonts"]
    files = sorted(path.name for path in FONTS.iterdir())
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in files)
    assert {face["file"] for face in FACES} <= set(files)
    dejavu = (FONTS / "LICENSE-DejaVu.txt").read_text()
    assert "License: bitstream-vera" in dejavu and "DejaVu changes are in public domain" in dejavu
    noto = (FONTS / "LICENSE-NotoColorEmoji.txt").read_text()
    assert "SIL OPEN FONT LICENSE Version 1.1" in noto
    shipped = sum((FONTS / face["file"]).stat().st_size for face in FACES)
    assert shipped < 100_000, f"{shipped} bytes of fonts: keep the subsets small"
