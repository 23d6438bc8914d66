"""Icons from the bundled SVG set, tinted for the theme and drawn crisp at any pixel density.

The icons are Lucide's (ISC licence), in resources/icons/lucide/ with their LICENSE; only the
ones the app uses are there. To add one, copy its SVG from the same set into that folder under
its Lucide name (see the README there) and ask for it by that name:

- ``icon("search")`` is a QIcon for buttons, actions, fields and items. Its colour is a token
  of the theme in force (``"text"`` unless told, e.g. ``icon("send", "on_accent")``), looked up
  each time it is drawn: after a theme switch it shows in the new colours without being set
  again. Disabled, it takes ``text_faint``.
- ``icon_pixmap("search", 20, colour, device_pixel_ratio)`` is a pixmap for a widget that
  paints itself (the navigation rail): give it the painter's ``device().devicePixelRatioF()``
  and it is drawn at that many pixels per point, never scaled up from a smaller one.
- ``svg_file("chevron-down", colour)`` is a copy of the SVG in that colour, for the style
  sheet's ``image: url(…)`` (Qt draws SVG images in style sheets at the screen's density).

Pixmaps are kept once drawn (by name, size, colour and ratio), so painting an icon again costs
a look-up; SVGs are read once each.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QIconEngine, QImage, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from desktop.ui.style import tokens

RESOURCES = Path(__file__).resolve().parents[3] / "resources"  # beside the desktop package
ICON_SET = "lucide"
ICON_DIR = RESOURCES / "icons" / ICON_SET
APP_ICON = RESOURCES / "nomoat.svg"

_MAX_KEPT = 512  # pixmaps kept: every icon of the app at a few sizes, in both themes
_kept: dict[tuple[str, int, int, int, int], QPixmap] = {}


def icon_path(name: str) -> Path:
    """The SVG file of the icon called *name* (a Lucide name such as ``"messages-square"``)."""
    path = ICON_DIR / f"{name}.svg"
    if not path.is_file():
        raise FileNotFoundError(f"No icon called {name!r} in {ICON_DIR}: copy its SVG from the "
                                f"{ICON_SET} set there (see the README in that folder).")
    return path


@lru_cache(maxsize=None)
def _renderer(name: str) -> QSvgRenderer:
    renderer = QSvgRenderer(str(icon_path(name)))
    if not renderer.isValid():
        raise ValueError(f"The icon file {icon_path(name)} is not an SVG Qt can draw.")
    return renderer


def icon_pixmap(name: str, size: int | QSize, color: QColor | str,
                device_pixel_ratio: float = 1.0) -> QPixmap:
    """The icon *name* in *color*, *size* device-independent pixels square (or that QSize),
    drawn with *device_pixel_ratio* pixels to each."""
    logical = size if isinstance(size, QSize) else QSize(size, size)
    color = QColor(color)
    ratio = max(1.0, float(device_pixel_ratio))
    key = (name, logical.width(), logical.height(), color.rgba(), round(ratio * 100))
    pixmap = _kept.get(key)
    if pixmap is not None:
        return pixmap
    width, height = round(logical.width() * ratio), round(logical.height() * ratio)
    image = QImage(max(1, width), max(1, height), QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    side = min(width, height)  # the icons are square: centred in a wider or taller box
    _renderer(name).render(painter, QRectF((width - side) / 2, (height - side) / 2, side, side))
    # The set draws in one colour: keep the drawing's coverage and paint it in *color*.
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
    painter.fillRect(image.rect(), color)
    painter.end()
    pixmap = QPixmap.fromImage(image)
    pixmap.setDevicePixelRatio(ratio)
    if len(_kept) >= _MAX_KEPT:
        _kept.clear()  # a theme switched back and forth many times: start again
    _kept[key] = pixmap
    return pixmap


_svg_dir: Path | None = None


def svg_file(name: str, color: QColor | str) -> Path:
    """A file with the icon *name* drawn in *color*, made once per colour while the app runs
    (in a folder of its own that is removed when it ends)."""
    global _svg_dir
    hex_colour = QColor(color).name()
    if _svg_dir is None:
        _svg_dir = Path(tempfile.mkdtemp(prefix="nomoat-icons-"))
        atexit.register(shutil.rmtree, _svg_dir, True)
    path = _svg_dir / f"{name}-{hex_colour[1:]}.svg"
    if not path.exists():
        text = icon_path(name).read_text(encoding="utf-8")
        path.write_text(text.replace("currentColor", hex_colour), encoding="utf-8")
    return path


class TintedIconEngine(QIconEngine):
    """Draws one icon of the set in the colour a token has in the theme of the moment."""

    def __init__(self, name: str, token: str = "text") -> None:
        super().__init__()
        icon_path(name)  # a missing file is found out now, not at the first paint
        self.name = name
        self.token = token

    def color(self, mode: QIcon.Mode) -> QColor:
        theme = tokens.current()
        return theme.color("text_faint" if mode == QIcon.Mode.Disabled else self.token)

    def scaledPixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State,  # noqa: N802
                     scale: float) -> QPixmap:
        return icon_pixmap(self.name, size, self.color(mode), scale)

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        return self.scaledPixmap(size, mode, state, 1.0)

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode,
              state: QIcon.State) -> None:
        ratio = painter.device().devicePixelRatioF() if painter.device() else 1.0
        painter.drawPixmap(rect, self.scaledPixmap(rect.size(), mode, state, ratio))

    def actualSize(self, size: QSize, mode: QIcon.Mode,  # noqa: N802 - Qt's name
                   state: QIcon.State) -> QSize:
        side = min(size.width(), size.height())
        return QSize(side, side)

    def iconName(self) -> str:  # noqa: N802 - Qt's name
        return self.name

    def key(self) -> str:
        return "nomoat-tinted"

    def clone(self) -> QIconEngine:
        return TintedIconEngine(self.name, self.token)


def icon(name: str, token: str = "text") -> QIcon:
    """The icon *name* as a QIcon, in the colour of *token* in whichever theme is in force."""
    return QIcon(TintedIconEngine(name, token))


def app_icon() -> QIcon:
    """NoMoat's own icon (resources/nomoat.svg), for the window and the task bar."""
    return QIcon(str(APP_ICON))
