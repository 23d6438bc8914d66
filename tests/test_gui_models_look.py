"""The catalog's search, filters and order, its cards, and how they look.

The window is opened as it first appears, with the catalog that comes with the app (the engine
is not needed). What each filter should leave is worked out here from catalog.json itself, with
the rules the filter bar's tooltips state, not with the app's own functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtTest import QAbstractItemModelTester
from PySide6.QtWidgets import QApplication, QComboBox, QLabel
from pytestqt.qtbot import QtBot
from test_gui_look import SIZES, cut_buttons

from desktop.core.downloads import DownloadEvent, State
from desktop.core.memory import FITS, TIGHT, UNKNOWN, WONT_FIT, MemoryEstimate, MemoryFit
from desktop.ui.app import DesktopApp
from desktop.ui.models.catalog import FitRole
from desktop.ui.style import DARK, LIGHT

REPO = Path(__file__).resolve().parent.parent
CATALOG = json.loads((REPO / "catalog.json").read_text(encoding="utf-8"))["models"]
IDS = [m["id"] for m in CATALOG]
STARTER = "smollm2-135m-instruct"
FATAL = QAbstractItemModelTester.FailureReportingMode.Fatal
VERDICTS = (FITS, TIGHT, WONT_FIT, UNKNOWN)


# -- the catalog, read here ----------------------------------------------------------------------
def billions(model: dict[str, Any]) -> float:
    """The parameters as the catalog writes them: '135M' is 0.135, '3.8B' is 3.8."""
    number, unit = re.fullmatch(r"([\d.]+)([MB])", model["parameters"]).groups()
    return float(number) / (1000 if unit == "M" else 1)


def size_is(model: dict[str, Any], size: str) -> bool:
    low, high = {"tiny": (0, 1), "small": (1, 3), "medium": (3, 7), "large": (7, 10**6)}[size]
    return low <= billions(model) < high


def verdict_of(row: int) -> str:
    """The memory verdict this test gives the catalog's entry at *row*."""
    return VERDICTS[row % len(VERDICTS)]


def ids_where(test: Any) -> list[str]:
    return [m["id"] for row, m in enumerate(CATALOG) if test(row, m)]


def searched(model: dict[str, Any], text: str) -> bool:
    fields = " ".join([model["name"], model["repo_id"], model["description"],
                       *model["tags"], model["license"], model["quantization"]]).lower()
    return all(word in fields for word in text.lower().split())


# -- the window ----------------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def opened(qtbot: QtBot, theme: str = "light") -> DesktopApp:
    """The window, on the Models page, once the catalog and its memory verdicts are in; then
    the verdicts this test chose (the free memory of this machine is not known beforehand)."""
    desktop = DesktopApp(QApplication.instance(), theme)  # type: ignore[arg-type]
    qtbot.addWidget(desktop.window)
    desktop.window.show()
    qtbot.waitExposed(desktop.window)
    desktop.window.show_page("Models")
    tab = desktop.models_page.catalog_tab
    qtbot.waitUntil(lambda: tab.model.rowCount() == len(CATALOG)
                    and tab.model.index(0).data(FitRole) is not None, timeout=15_000)
    estimate = MemoryEstimate(weights=1, kv_cache=1, overhead=1, runtime=1, rough=True)
    tab.model.set_fits({m["id"]: MemoryFit(verdict_of(row), estimate, 2**33)
                        for row, m in enumerate(CATALOG)})
    return desktop


@pytest.fixture
def desktop(qtbot: QtBot, home: Path) -> Iterator[DesktopApp]:
    app = opened(qtbot)
    testers = [QAbstractItemModelTester(model, FATAL) for model in (
        app.models_page.catalog_tab.model, app.models_page.catalog_tab.shown)]
    try:
        yield app
    finally:
        app.close()
    assert len(testers) == 2  # watched to the end


def choose(box: QComboBox, value: str) -> None:
    """As a user does: pick the item that stands for *value*."""
    index = box.findData(value)
    assert index >= 0, (box.accessibleName(), value)
    box.setCurrentIndex(index)


def shown(app: DesktopApp) -> list[str]:
    """The ids of the cards on screen, in the order they are laid out: row by row."""
    tab = app.models_page.catalog_tab
    QApplication.processEvents()  # the grid lays out what it was told
    cards = [tab.card(i) for i in IDS]
    visible = [c for c in cards if c is not None and c.isVisible()]
    visible.sort(key=lambda c: (c.y(), c.x()))
    assert [c.entry.id for c in visible] == tab.shown_ids()
    return [c.entry.id for c in visible]


# -- filters -------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["tiny", "small", "medium", "large"])
def test_the_size_filter(qtbot: QtBot, desktop: DesktopApp, size: str) -> None:
    bar = desktop.models_page.catalog_tab.filter_bar
    choose(bar.size, size)
    expected = ids_where(lambda row, m: size_is(m, size))
    assert expected and len(expected) < len(IDS)
    assert shown(desktop) == expected
    assert bar.count.text() == f"{len(expected)} of {len(IDS)} models"


def test_the_license_kind_fits_and_open_filters(qtbot: QtBot, desktop: DesktopApp) -> None:
    bar = desktop.models_page.catalog_tab.filter_bar
    licenses = sorted({m["license"] for m in CATALOG})
    assert sorted(bar.license.itemData(i) for i in range(1, bar.license.count())) == licenses
    for license_id in licenses:
        choose(bar.license, license_id)
        assert shown(desktop) == ids_where(lambda row, m: m["license"] == license_id)
    choose(bar.license, "")
    assert shown(desktop) == IDS

    choose(bar.kind, "embedding")
    assert shown(desktop) == ids_where(lambda row, m: m.get("kind") == "embedding") != []
    choose(bar.kind, "chat")
    assert shown(desktop) == ids_where(lambda row, m: m.get("kind", "chat") == "chat")
    choose(bar.kind, "")

    qtbot.mouseClick(bar.fits, Qt.MouseButton.LeftButton)
    assert shown(desktop) == ids_where(lambda row, m: verdict_of(row) in (FITS, TIGHT))
    qtbot.mouseClick(bar.fits, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(bar.fully_open, Qt.MouseButton.LeftButton)
    opened_ids = ids_where(lambda row, m: "fully-open" in m["tags"])
    assert shown(desktop) == opened_ids
    assert {"olmo-2-7b-instruct", "smollm2-135m-instruct"} <= set(opened_ids)
    assert "llama-3-1-8b-instruct" not in opened_ids

    # Filters combine: each leaves out what it would alone.
    choose(bar.size, "small")
    qtbot.mouseClick(bar.fits, Qt.MouseButton.LeftButton)
    both = ids_where(lambda row, m: "fully-open" in m["tags"] and size_is(m, "small")
                     and verdict_of(row) in (FITS, TIGHT))
    assert shown(desktop) == both
    assert bar.count.text() == f"{len(both)} of {len(IDS)} models"


@pytest.mark.parametrize("text", ["coder", "QWEN instruct", "allen institute", "gemma"])
def test_the_search(qtbot: QtBot, desktop: DesktopApp, text: str) -> None:
    bar = desktop.models_page.catalog_tab.filter_bar
    bar.search.setFocus()
    qtbot.keyClicks(bar.search, text)
    expected = ids_where(lambda row, m: searched(m, text))
    assert expected and len(expected) < len(IDS)
    assert shown(desktop) == expected


# -- order ---------------------------------------------------------------------------------------
def test_the_orders(qtbot: QtBot, desktop: DesktopApp) -> None:
    bar = desktop.models_page.catalog_tab.filter_bar
    by_id = {m["id"]: m for m in CATALOG}
    assert shown(desktop) == IDS  # the catalog's own order first
    choose(bar.sort, "name")
    assert shown(desktop) == sorted(IDS, key=lambda i: by_id[i]["name"].lower())
    choose(bar.sort, "smallest")
    assert shown(desktop) == sorted(IDS, key=lambda i: by_id[i]["size_bytes"])
    choose(bar.sort, "largest")
    assert shown(desktop) == sorted(IDS, key=lambda i: -by_id[i]["size_bytes"])
    choose(bar.sort, "newest")
    newest = sorted(IDS, key=lambda i: (by_id[i]["released"], -IDS.index(i)), reverse=True)
    assert shown(desktop) == newest
    assert shown(desktop)[0] in ("gemma-3-1b-it", "gemma-3-4b-it", "olmo-2-1b-instruct",
                                 "qwen3-4b")
    # An order and a filter together.
    qtbot.mouseClick(bar.fully_open, Qt.MouseButton.LeftButton)
    assert shown(desktop) == [i for i in newest if "fully-open" in by_id[i]["tags"]]
    choose(bar.sort, "recommended")
    assert shown(desktop) == [i for i in IDS if "fully-open" in by_id[i]["tags"]]


# -- the count, an empty result, clearing --------------------------------------------------------
def test_the_count_an_empty_result_and_clear_filters(qtbot: QtBot,
                                                     desktop: DesktopApp) -> None:
    tab = desktop.models_page.catalog_tab
    bar = tab.filter_bar
    assert bar.count.text() == f"{len(IDS)} models" and not bar.clear.isVisible()
    choose(bar.sort, "name")
    choose(bar.kind, "embedding")
    choose(bar.size, "large")  # no embedding model is large
    assert shown(desktop) == [] and tab.shown_ids() == []
    assert bar.count.text() == f"0 of {len(IDS)} models" and bar.clear.isVisible()
    assert tab.empty.isVisible() and not tab.cards.isVisible()
    assert "passes these filters" in tab.empty.text.text()
    assert tab.empty.clear.isVisible() and tab.empty.clear.property("primary") is True

    qtbot.mouseClick(tab.empty.clear, Qt.MouseButton.LeftButton)  # one click
    assert shown(desktop) == sorted(IDS, key=lambda i: next(
        m["name"].lower() for m in CATALOG if m["id"] == i))  # the order stays
    assert not tab.empty.isVisible() and tab.cards.isVisible()
    assert bar.count.text() == f"{len(IDS)} models" and not bar.clear.isVisible()
    assert (bar.size.currentData(), bar.kind.currentData()) == ("", "")

    qtbot.keyClicks(bar.search, "no such model anywhere")
    assert tab.empty.isVisible() and "\u201cno such model anywhere\u201d" in tab.empty.text.text()
    qtbot.mouseClick(bar.clear, Qt.MouseButton.LeftButton)  # the bar's own Clear
    assert bar.search.text() == "" and len(shown(desktop)) == len(IDS)


def test_filters_and_order_are_remembered_but_not_the_search(qtbot: QtBot, home: Path) -> None:
    first = opened(qtbot)
    try:
        bar = first.models_page.catalog_tab.filter_bar
        choose(bar.size, "small")
        choose(bar.license, "apache-2.0")
        choose(bar.sort, "newest")
        qtbot.mouseClick(bar.fully_open, Qt.MouseButton.LeftButton)
        qtbot.keyClicks(bar.search, "smol")
        wanted = shown(first)
        assert wanted == ["smollm2-1-7b-instruct"]
    finally:
        first.close()
    assert "catalogFilters" in (home / "settings" / "window.ini").read_text()

    second = opened(qtbot)
    try:
        bar = second.models_page.catalog_tab.filter_bar
        assert (bar.size.currentData(), bar.license.currentData(), bar.kind.currentData(),
                bar.sort.currentData()) == ("small", "apache-2.0", "", "newest")
        assert bar.fully_open.isChecked() and not bar.fits.isChecked()
        assert bar.search.text() == ""
        by_id = {m["id"]: m for m in CATALOG}
        expected = [i for i in sorted(IDS, key=lambda i: (by_id[i]["released"],
                                                          -IDS.index(i)), reverse=True)
                    if size_is(by_id[i], "small") and by_id[i]["license"] == "apache-2.0"
                    and "fully-open" in by_id[i]["tags"]]
        assert shown(second) == expected and "smollm2-1-7b-instruct" in expected
        bar.clear_filters()
    finally:
        second.close()

    third = opened(qtbot)
    try:
        bar = third.models_page.catalog_tab.filter_bar
        assert not bar.filters().active and bar.sort.currentData() == "newest"
    finally:
        third.close()


# -- the cards -----------------------------------------------------------------------------------
def test_a_card_has_a_name_badges_facts_a_description_and_one_main_action(
        qtbot: QtBot, desktop: DesktopApp) -> None:
    tab = desktop.models_page.catalog_tab
    card = tab.card("olmo-2-7b-instruct")
    assert card.title.full_text == "OLMo 2 7B Instruct"
    assert card.facts.text() == "7B parameters · Q4_K_M · 4.5 GB · 4K context"
    assert "4,096 tokens of context" in card.facts.toolTip()
    words = {FITS: "fits", TIGHT: "tight", WONT_FIT: "won't fit", UNKNOWN: "memory unknown"}
    assert [b.text() for b in (card.badge, card.license_badge, card.open_badge)] == \
        [words[verdict_of(IDS.index(card.entry.id))], "Apache 2.0", "Fully open"]
    assert card.badge.property("tone") == \
        {FITS: "success", TIGHT: "warning", WONT_FIT: "error", UNKNOWN: "neutral"}[
            verdict_of(IDS.index(card.entry.id))]
    assert card.open_badge.isVisible() and not card.kind_label.isVisible()
    assert card.description.text() == card.entry.description
    assert card.controls.download_button.property("primary") is True
    assert card.controls.download_button.isVisible() and not card.installed_row.isVisible()
    llama = tab.card("llama-3-1-8b-instruct")
    assert not llama.open_badge.isVisible() and llama.license_badge.text() == "Llama 3.1 license"
    split = tab.card("qwen2-5-7b-instruct")
    assert "4.7 GB to download in 2 files" in split.facts.toolTip()
    # A long description ends in "…" within three lines; its tooltip has it all.
    desktop.window.resize(1024, 700)
    QApplication.processEvents()
    long_ones = [tab.card(i) for i in IDS if tab.card(i).description.clamped]
    assert long_ones
    assert all(c.description.toolTip() == c.entry.description for c in long_ones)
    assert all(c.description.height() == 3 * c.description.fontMetrics().lineSpacing()
               for c in (tab.card(i) for i in IDS))

    # Installed: Load is the main action, and the model can be removed from here. Loaded:
    # nothing to press.
    tab.model.set_installed({STARTER: STARTER, "smollm2-360m-instruct": "smollm2-360m"})
    starter, other = tab.card(STARTER), tab.card("smollm2-360m-instruct")
    assert other.load_button.isVisible() and other.load_button.property("primary") is True
    assert not other.controls.isVisible() and other.remove_button.isVisible()
    assert not starter.remove_button.isVisible()  # it comes with the app
    tab.model.set_loaded(STARTER)
    assert not starter.load_button.isVisible()
    assert starter.installed_label.text() == "\u2713 Loaded · the chat uses it"
    assert starter.installed_label.property("tone") == "success"
    assert other.installed_label.text() == "Installed"
    removed: list[str] = []
    tab.removeRequested.connect(removed.append)
    qtbot.mouseClick(other.remove_button, Qt.MouseButton.LeftButton)
    assert removed == ["smollm2-360m"]
    assert tab.hub_page("allenai/OLMo-2-1124-7B-Instruct-GGUF") == \
        "https://huggingface.co/allenai/OLMo-2-1124-7B-Instruct-GGUF"


def downloading(entry_id: str) -> DownloadEvent:
    model = next(m for m in CATALOG if m["id"] == entry_id)
    key = f"{model['repo_id']}/{model['filename']}"
    return DownloadEvent(key, State.DOWNLOADING, done_bytes=model["size_bytes"] // 3,
                         total_bytes=model["size_bytes"], speed=12_500_000, eta=41.0)


def cut_labels(root: Any) -> list[str]:
    """Badges and one-line labels shown in *root* narrower than their text."""
    cut = []
    for label in root.findChildren(QLabel):
        if (not label.isVisible() or label.wordWrap() or not label.text()
                or label.text().endswith("…")):
            continue
        margins = label.contentsMargins()
        room = label.contentsRect().width() - 2 * label.margin()
        need = QFontMetrics(label.font()).horizontalAdvance(label.text())
        if room < need:
            cut.append(f"{label.text()!r} ({room} < {need}, margins {margins.left()})")
    return cut


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_no_text_is_cut_off_on_the_cards(qtbot: QtBot, home: Path, size: tuple[int, int],
                                         theme: str) -> None:
    app = opened(qtbot, theme)
    try:
        window = app.window
        tab = app.models_page.catalog_tab
        window.resize(*size)
        QApplication.processEvents()
        assert (window.width(), window.height()) == size
        # Every state of the main action: Download, Load, a download under way, one paused,
        # one failed; and the embedding model's longer badges.
        tab.model.set_installed({"smollm2-360m-instruct": "smollm2-360m"})
        for entry_id, state in (("qwen2-5-0-5b-instruct", State.DOWNLOADING),
                                ("gemma-3-1b-it", State.PAUSED),
                                ("llama-3-2-1b-instruct", State.FAILED)):
            event = downloading(entry_id)
            tab.model.set_download(DownloadEvent(event.key, state, event.done_bytes,
                                                 event.total_bytes, event.speed, event.eta,
                                                 message="The hub did not answer."))
        QApplication.processEvents()
        assert tab.card("gemma-3-1b-it").controls.pause_button.text() == "Resume"
        assert tab.card("llama-3-2-1b-instruct").controls.pause_button.text() == "Try again"
        columns = tab.cards.columns
        assert columns == (3 if size[0] >= 1280 else 2), columns
        bar = tab.filter_bar
        qtbot.mouseClick(bar.fully_open, Qt.MouseButton.LeftButton)  # "Clear filters" shows
        qtbot.mouseClick(bar.fully_open, Qt.MouseButton.LeftButton)
        choose(bar.kind, "chat")
        assert bar.clear.isVisible()
        choose(bar.kind, "")
        scroll = tab.cards.verticalScrollBar()
        for value in range(0, scroll.maximum() + 1, max(1, scroll.pageStep())):
            scroll.setValue(value)
            QApplication.processEvents()
        assert not cut_buttons(tab), cut_buttons(tab)
        assert not cut_labels(tab), cut_labels(tab)
        for card in (tab.card(i) for i in IDS):
            # The whole card fits its cell: badges that wrap make it taller, not cut.
            badges = card.badge.parentWidget()
            assert badges.geometry().bottom() < card.facts.geometry().top(), card.entry.id
            assert card.description.geometry().bottom() <= card.height(), card.entry.id
            assert card.title.text() == card.title.full_text, card.entry.id  # names whole
            assert card.facts.text() == card.facts.full_text, card.entry.id  # facts whole
        # Cards are painted in the theme's colours.
        card = tab.card(IDS[0])
        image = card.grab().toImage()
        assert image.pixelColor(card.width() // 2, 5).name() == \
            (DARK if theme == "dark" else LIGHT).raised
    finally:
        app.close()


# -- the keyboard --------------------------------------------------------------------------------
def test_ctrl_f_finds_in_the_models_page_and_tab_reaches_every_card(
        qtbot: QtBot, desktop: DesktopApp) -> None:
    window = desktop.window
    page = desktop.models_page
    tab = page.catalog_tab
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.nav.setFocus()
    qtbot.keyClick(window.nav, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is page  # still here: not the chats' search
    assert QApplication.focusWidget() is tab.search

    page.tabs.setCurrentWidget(page.explore_tab)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is page.explore_tab.query
    page.tabs.setCurrentWidget(page.installed_tab)
    page.installed_tab.table.setFocus()
    qtbot.keyClick(page.installed_tab.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert page.tabs.currentWidget() is tab and QApplication.focusWidget() is tab.search

    # On another page, Ctrl+F is the chats' search again.
    window.show_page("Settings")
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.chat_page
    assert QApplication.focusWidget() is window.sidebar.search

    # From the search, Tab goes through the filters, then through the cards' buttons in the
    # order the cards are shown.
    window.show_page("Models")
    choose(tab.filter_bar.sort, "name")
    tab.search.setFocus()
    reached: list[Any] = []
    for _ in range(6 + 2 * len(IDS)):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        reached.append(QApplication.focusWidget())
        assert not reached[-1].visibleRegion().isEmpty()  # scrolled into view
    bar = tab.filter_bar
    assert reached[:6] == [bar.sort, bar.size, bar.license, bar.kind, bar.fits, bar.fully_open]
    cards = [tab.card(i) for i in tab.shown_ids()]
    assert reached[6:] == [button for card in cards
                           for button in (card.hub_button, card.controls.download_button)]


def test_the_documents_page_sends_to_the_embedding_models_whatever_the_filters(
        qtbot: QtBot, desktop: DesktopApp) -> None:
    bar = desktop.models_page.catalog_tab.filter_bar
    choose(bar.kind, "chat")
    choose(bar.sort, "name")
    assert "nomic-embed-text-v1-5" not in shown(desktop)
    desktop.window.show_page("Documents")
    desktop.docs_page.modelsRequested.emit()
    assert desktop.window.nav.currentItem().text() == "Models"
    embedding = ids_where(lambda row, m: m.get("kind") == "embedding")
    assert embedding and shown(desktop) == embedding
    assert bar.kind.currentData() == "embedding" and bar.sort.currentData() == "name"
