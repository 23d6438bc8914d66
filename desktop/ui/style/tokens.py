"""The design tokens: the few sizes, spaces, radii and colours every view draws with.

Use these names instead of numbers and colour codes in views, so the light and the dark theme
stay one visual language and a change of taste is made here once:

- **Type**: ``type_font(TYPE_TITLE)`` (or ``type_font(TYPE_CAPTION, widget.font())``) gives a
  font of that step of the scale. Steps are points added to the user's chosen font size
  (Settings → Font size), so the whole scale follows it.
- **Space**: ``SPACE_XS`` … ``SPACE_XXL`` (pixels) for margins, paddings and gaps.
- **Radius**: ``RADIUS_S`` (small controls, badges), ``RADIUS_M`` (buttons, fields),
  ``RADIUS_L`` (cards, panels), ``RADIUS_XL`` (the chat's bubbles and its message box).
- **Measure**: ``READABLE_WIDTH``, the widest a column of running text gets (the chat's);
  ``FORM_WIDTH``, the widest the column of a page of settings and lists gets.
- **Colour**: ``current()`` is the :class:`Tokens` of the theme in force (:data:`LIGHT` or
  :data:`DARK`); read it when painting, not once at start-up, so a theme switch shows at the
  next paint. Widgets styled through the application's style sheet (desktop/ui/style/sheet.py)
  and its palette follow a switch by themselves.

Nothing here touches a widget; :func:`desktop.ui.style.apply_theme` puts the tokens to work.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QFont, QGuiApplication

# -- type: points added to the app's font size -------------------------------------------------
TYPE_CAPTION = -1  # labels under icons, badges, facts in small print
TYPE_BODY = 0  # everything else
TYPE_SUBTITLE = 2  # a card's or a section's name
TYPE_TITLE = 5  # a page's heading

# -- space, in pixels --------------------------------------------------------------------------
SPACE_XS = 4
SPACE_S = 8
SPACE_M = 12
SPACE_L = 16
SPACE_XL = 24
SPACE_XXL = 32

# -- corner radii, in pixels -------------------------------------------------------------------
RADIUS_S = 4
RADIUS_M = 6
RADIUS_L = 10
RADIUS_XL = 16

# -- measure -----------------------------------------------------------------------------------
READABLE_WIDTH = 760  # pixels: about 90 characters a line at the usual font size
FORM_WIDTH = 900  # pixels: a label, a field and a button or two side by side

# -- icons, in device-independent pixels -------------------------------------------------------
ICON_S = 16  # in buttons and fields
ICON_M = 20  # in the navigation rail

FOCUS_WIDTH = 2  # the keyboard focus ring, in pixels


@dataclass(frozen=True)
class Tokens:
    """The colours of one theme, as ``#rrggbb`` strings (QSS and QColor both read them).

    Greys go from the back of the window to the front: ``surface`` (the rail, the conversation
    list, the status bar), ``window`` (the page), ``raised`` (buttons, cards, the user's
    bubble), ``base`` (text fields and lists). There is one accent.
    """

    name: str
    dark: bool
    surface: str
    window: str
    raised: str
    base: str
    alternate: str  # the user's bubble, every other row of a table
    border: str  # hairlines around fields, buttons and cards
    border_strong: str  # a border under the pointer, or one that must show
    hover: str  # the background under the pointer
    pressed: str
    text: str
    text_muted: str  # secondary text: facts, notes, unselected labels
    text_faint: str  # placeholders and disabled text
    accent: str
    accent_hover: str
    accent_soft: str  # the background of a selected item
    on_accent: str  # text and icons on an accent background
    focus: str  # the keyboard focus ring
    success: str  # text colours that read on `window`
    warning: str
    error: str
    fill_success: str  # solid fills that carry white text (badges, the engine's banner)
    fill_warning: str
    fill_error: str
    fill_neutral: str
    code_keyword: str  # the colours of code in replies
    code_string: str
    code_number: str
    code_comment: str

    def color(self, token: str) -> QColor:
        """The colour of the token named *token* (``"accent"``, ``"text_muted"``…)."""
        return QColor(getattr(self, token))


LIGHT = Tokens(
    name="light", dark=False,
    surface="#f4f5f7", window="#ffffff", raised="#ffffff", base="#ffffff", alternate="#f1f3f6",
    border="#d8dbe0", border_strong="#b4b9c2", hover="#eceef2", pressed="#e1e4ea",
    text="#1f2328", text_muted="#57606a", text_faint="#8c949e",
    accent="#2563eb", accent_hover="#1d4ed8", accent_soft="#e3ebfd", on_accent="#ffffff",
    focus="#2563eb",
    success="#15803d", warning="#b45309", error="#b91c1c",
    fill_success="#15803d", fill_warning="#b45309", fill_error="#b91c1c", fill_neutral="#6b7280",
    code_keyword="#a626a4", code_string="#50a14f", code_number="#986801", code_comment="#a0a1a7",
)

DARK = Tokens(
    name="dark", dark=True,
    surface="#161719", window="#1e1f22", raised="#2a2c30", base="#232428", alternate="#2a2c30",
    border="#3a3d43", border_strong="#575b63", hover="#2f3236", pressed="#383b40",
    text="#e6e8eb", text_muted="#a2a8b0", text_faint="#6f757d",
    accent="#4f8ef7", accent_hover="#6ea2f9", accent_soft="#233456", on_accent="#ffffff",
    focus="#7aa9fa",
    success="#4ade80", warning="#fbbf24", error="#f87171",
    fill_success="#15803d", fill_warning="#b45309", fill_error="#b91c1c", fill_neutral="#6b7280",
    code_keyword="#c678dd", code_string="#98c379", code_number="#d19a66", code_comment="#7f848e",
)

_current = LIGHT


def current() -> Tokens:
    """The tokens of the theme in force."""
    return _current


def set_current(tokens: Tokens) -> None:
    """Make *tokens* the theme in force (apply_theme does this; views only read it)."""
    global _current
    _current = tokens


def type_font(step: int, base: QFont | None = None) -> QFont:
    """A copy of *base* (the application's font if None) at the size of *step* of the scale.

    TYPE_SUBTITLE and TYPE_TITLE are also bold: a heading reads as one without another rule.
    """
    font = QFont(base if base is not None else QGuiApplication.font())
    size = font.pointSizeF()
    if size > 0:
        font.setPointSizeF(max(6.0, size + step))
    if step >= TYPE_SUBTITLE:
        font.setWeight(QFont.Weight.DemiBold)
    return font
