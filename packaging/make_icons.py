"""Render NoMoat's icon files from resources/nomoat.svg.

Writes resources/icons/nomoat-<size>.png (the Linux hicolor sizes), resources/nomoat.ico
(Windows: the executable and the installer) and resources/nomoat.icns (macOS: the .app). The
outputs are kept in the repository, so a build needs no renderer; run this again after
changing the SVG:

    .venv/bin/python packaging/make_icons.py
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SVG = REPO / "resources" / "nomoat.svg"
PNG_DIR = REPO / "resources" / "icons"
ICO = REPO / "resources" / "nomoat.ico"
ICNS = REPO / "resources" / "nomoat.icns"

PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# The PNG-payload icon types of the icns format, by pixel size.
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08",
              512: b"ic09", 1024: b"ic10"}


def png_path(size: int) -> Path:
    """Where the PNG of *size* pixels lives."""
    return PNG_DIR / f"nomoat-{size}.png"


def render_png(svg: Path, size: int) -> bytes:
    """The SVG drawn into a transparent square of *size* pixels, as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    if QGuiApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        render_png.app = QGuiApplication(sys.argv[:1])  # type: ignore[attr-defined]
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not an SVG that Qt can draw.")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def build_ico(pngs: dict[int, bytes]) -> bytes:
    """An .ico holding each PNG as it is (PNG entries work on Windows Vista and later)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = 6 + 16 * len(pngs)
    entries, payload = b"", b""
    for size, data in sorted(pngs.items()):
        side = 0 if size >= 256 else size  # 0 means 256 in the directory entry
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        payload += data
        offset += len(data)
    return header + entries + payload


def read_ico(data: bytes) -> dict[int, bytes]:
    """The PNG images of an .ico made by :func:`build_ico`, by size."""
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    if reserved != 0 or kind != 1:
        raise ValueError("not an icon file")
    images = {}
    for index in range(count):
        side, _, _, _, _, _, length, offset = struct.unpack(
            "<BBBBHHII", data[6 + 16 * index:22 + 16 * index])
        images[side or 256] = data[offset:offset + length]
    return images


def build_icns(pngs: dict[int, bytes]) -> bytes:
    """An .icns holding each PNG under its icon type."""
    body = b""
    for size, data in sorted(pngs.items()):
        body += ICNS_TYPES[size] + struct.pack(">I", 8 + len(data)) + data
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def read_icns(data: bytes) -> dict[bytes, bytes]:
    """The entries of an .icns file, by icon type."""
    if data[:4] != b"icns" or struct.unpack(">I", data[4:8])[0] != len(data):
        raise ValueError("not an icns file")
    entries, offset = {}, 8
    while offset < len(data):
        kind, length = data[offset:offset + 4], struct.unpack(">I", data[offset + 4:offset + 8])[0]
        if length < 8:
            raise ValueError("broken icns entry")
        entries[kind] = data[offset + 8:offset + length]
        offset += length
    return entries


def main() -> int:
    """Render every icon file from the SVG."""
    PNG_DIR.mkdir(parents=True, exist_ok=True)
    rendered = {size: render_png(SVG, size) for size in sorted(set(PNG_SIZES) | {1024})}
    for size in PNG_SIZES:
        png_path(size).write_bytes(rendered[size])
    ICO.write_bytes(build_ico({size: rendered[size] for size in ICO_SIZES}))
    ICNS.write_bytes(build_icns({size: rendered[size] for size in ICNS_TYPES}))
    print(f"Wrote {len(PNG_SIZES)} PNG sizes, {ICO.name} and {ICNS.name} from {SVG.name}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
