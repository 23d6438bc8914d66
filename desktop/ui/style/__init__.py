"""NoMoat's look: design tokens, the theme (palette and style sheet on Fusion), and icons.

- tokens.py: the type scale, spacing steps, radii and the colours of the light and the dark
  theme; ``current()`` is the theme in force.
- sheet.py: the palette and the application style sheet made from the tokens.
- icons.py: the bundled Lucide icons, tinted for the theme, crisp at any pixel density.
- proxy.py: Fusion, with the icon set's chevrons for its arrows.

:func:`apply_theme` restyles the whole application at once: every widget takes the new palette
and style sheet, and icons made with :func:`icon` take the new colours at their next paint.
Views that paint themselves read :func:`current` in their paint code; those that must do more
on a switch (the chat's code colours) are told by the app (DesktopApp._theme), or may catch
``QEvent.Type.PaletteChange``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from desktop.ui.style.icons import app_icon, icon, icon_pixmap
from desktop.ui.style.proxy import NoMoatStyle
from desktop.ui.style.sheet import make_palette, style_sheet
from desktop.ui.style.tokens import DARK, LIGHT, Tokens, current, set_current, type_font

__all__ = ["DARK", "LIGHT", "Tokens", "app_icon", "apply_font_size", "apply_theme", "current",
           "icon", "icon_pixmap", "theme_tokens", "type_font"]


def theme_tokens(theme: str, scheme: Qt.ColorScheme | None = None) -> Tokens:
    """The tokens of *theme* ("light", "dark" or "system": the system's *scheme*, else the
    one the system has now)."""
    if theme == "system":
        hints = QApplication.styleHints()
        return DARK if (scheme or hints.colorScheme()) == Qt.ColorScheme.Dark else LIGHT
    return DARK if theme == "dark" else LIGHT


def apply_theme(app: QApplication, theme: str, scheme: Qt.ColorScheme | None = None) -> bool:
    """Put *theme* in force across *app*; returns whether it is dark."""
    tokens = theme_tokens(theme, scheme)
    set_current(tokens)
    if app.style().objectName() != "nomoat" and not app.property("nomoatStyle"):
        app.setStyle(NoMoatStyle())  # once: a new style polishes every widget again
        app.setProperty("nomoatStyle", True)
    app.setPalette(make_palette(tokens))
    app.setStyleSheet(style_sheet(tokens))
    return tokens.dark


def apply_font_size(app: QApplication, points: int) -> None:
    """Set the size of the app's text, in points; widgets follow at once."""
    font = app.font()
    font.setPointSize(points)
    app.setFont(font)
    # Widgets polished by the style sheet keep the font they had; polishing them again with
    # the same sheet hands them the new one.
    app.setStyleSheet(app.styleSheet())
