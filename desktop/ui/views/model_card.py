"""A catalog entry as a card: its name, badges (memory fit, what it is for, license, fully
open), one line of facts, the description in a few lines, and one main action.

The main action is Download; once installed, Load (a chat model) or nothing to press (an
embedding model, which the Documents page uses). A download in progress shows its bar, Pause
and Cancel instead. Beside it, small buttons open the model's page on the hub and remove an
installed copy.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QPushButton, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)

from desktop.core.catalog import CatalogEntry
from desktop.core.downloads import format_bytes
from desktop.core.gguf_info import EMBEDDING
from desktop.core.memory import FITS, TIGHT, UNKNOWN, WONT_FIT, MemoryFit
from desktop.ui.models.catalog import fit_message
from desktop.ui.models.catalog_filter import context_words, fully_open, license_name
from desktop.ui.style import type_font
from desktop.ui.style.tokens import (SPACE_L, SPACE_M, SPACE_S, SPACE_XS,
                                     TYPE_CAPTION, TYPE_SUBTITLE)
from desktop.ui.views.card_parts import ClampedText, FlowLayout, make_badge, set_tone
from desktop.ui.views.downloads_page import DownloadControls
from desktop.ui.views.labels import ElidedLabel, icon_button

EMBEDDING_LABEL = "Embedding model — for Documents"
FIT_TONES = {FITS: "success", TIGHT: "warning", WONT_FIT: "error", UNKNOWN: "neutral"}
DESCRIPTION_LINES = 3
CARD_WIDTH = 360  # the narrowest a card gets before the grid has one column fewer


def entry_facts(entry: CatalogEntry) -> str:
    """'135M parameters · Q4_1 · 98.4 MB · 8K context' (the tooltip has them in whole)."""
    return " · ".join([f"{entry.parameters} parameters", entry.quantization,
                       format_bytes(entry.size_bytes),
                       f"{context_words(entry.context_length)} context"])


def facts_tooltip(entry: CatalogEntry) -> str:
    """The facts in whole words, for the facts line's tooltip."""
    count = f" ({entry.parameters_count:,})" if entry.parameters_count else ""
    lines = [f"{entry.parameters} parameters{count}", f"Quantization {entry.quantization}",
             f"{format_bytes(entry.size_bytes)} to download"
             + (f" in {len(entry.files)} files" if entry.is_split else ""),
             f"{entry.context_length:,} tokens of context",
             f"From {entry.repo_id}"]
    if entry.released:
        lines.append(f"Released {entry.released}")
    return "\n".join(lines)


def focusable_icon_button(name: str, tip: str, accessible: str) -> QToolButton:
    button = icon_button(name, accessible, tip)
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return button


class CatalogCard(QFrame):
    """One catalog entry."""

    hubPageRequested = Signal(str)  # the repo id
    removeRequested = Signal(str)  # the installed model's id

    def __init__(self, entry: CatalogEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.installed_id: str | None = None
        self.loaded = False
        self.embedding = entry.kind == EMBEDDING
        self.setObjectName("modelCard")
        self.setAttribute(Qt.WidgetAttribute.WA_Hover)  # the border shows the pointer
        self.setAccessibleName(f"Catalog model {entry.name}")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(SPACE_L, SPACE_M, SPACE_L, SPACE_M)
        layout.setSpacing(SPACE_S)

        self.title = ElidedLabel(entry.name)
        self.title.setFont(type_font(TYPE_SUBTITLE, self.title.font()))
        self.title.setAccessibleName(entry.name)
        layout.addWidget(self.title)

        badges = QWidget()
        self.badges = FlowLayout(badges)
        self.badge = make_badge("checking memory…")
        self.badge.setAccessibleName(f"Memory fit of {entry.name}")
        self.badges.add(self.badge)
        self.kind_label = make_badge(EMBEDDING_LABEL, "accent")
        self.kind_label.setAccessibleName(f"What {entry.name} is for")
        self.kind_label.setToolTip("It turns text into vectors so the chat can search your "
                                   "documents by meaning; it cannot chat. The Documents page "
                                   "uses it once it is installed.")
        self.badges.add(self.kind_label)
        self.kind_label.setVisible(self.embedding)
        self.license_badge = make_badge(license_name(entry.license), "outline")
        self.license_badge.setAccessibleName(f"License of {entry.name}")
        self.license_badge.setToolTip(f"License: {entry.license}")
        self.badges.add(self.license_badge)
        self.open_badge = make_badge("Fully open", "success")
        self.open_badge.setToolTip("Open weights under an open-source license, and the "
                                   "training data and code are published too.")
        self.badges.add(self.open_badge)
        self.open_badge.setVisible(fully_open(entry))
        layout.addWidget(badges)

        self.facts = ElidedLabel(entry_facts(entry))
        self.facts.setFont(type_font(TYPE_CAPTION, self.facts.font()))
        self.facts.setProperty("muted", True)
        self.facts.setToolTip(facts_tooltip(entry))
        layout.addWidget(self.facts)
        self.description = ClampedText(entry.description, DESCRIPTION_LINES)
        layout.addWidget(self.description)
        layout.addStretch(1)

        footer = QHBoxLayout()
        footer.setSpacing(SPACE_XS)
        self.hub_button = focusable_icon_button(
            "external-link", f"Open {entry.repo_id} on the hub",
            f"Open the page of {entry.name} on the hub")
        self.hub_button.clicked.connect(lambda: self.hubPageRequested.emit(entry.repo_id))
        footer.addWidget(self.hub_button)
        self.remove_button = focusable_icon_button("trash-2", "Remove the downloaded model…",
                                                   f"Remove {entry.name}")
        self.remove_button.clicked.connect(self._remove)
        self.remove_button.hide()
        footer.addWidget(self.remove_button)

        self.installed_row = QWidget()
        row = QHBoxLayout(self.installed_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addStretch(1)
        self.installed_label = make_badge("Installed")
        self.installed_label.setAccessibleName(f"Where {entry.name} stands")
        row.addWidget(self.installed_label)
        self.load_button = QPushButton("Load")
        self.load_button.setProperty("primary", True)
        self.load_button.setAccessibleName(f"Load {entry.name}")
        row.addWidget(self.load_button)
        self.load_button.setHidden(self.embedding)  # not a chat model: nothing to load
        footer.addWidget(self.installed_row, 1)
        self.controls = DownloadControls(entry.name, primary=True)
        footer.addWidget(self.controls, 1)
        layout.addLayout(footer)
        self.installed_row.hide()

    def show_fit(self, fit: MemoryFit | None) -> None:
        if fit is None:
            self.badge.setText("checking memory…")
            set_tone(self.badge, "neutral")
            self.badge.setToolTip("")
            return
        self.badge.setText("memory unknown" if fit.verdict == UNKNOWN else fit.verdict)
        set_tone(self.badge, FIT_TONES[fit.verdict])
        self.badge.setToolTip(fit_message(self.entry, fit))

    def show_installed(self, model_id: str | None, loaded: bool = False) -> None:
        self.installed_id = model_id
        self.loaded = loaded and model_id is not None
        self.installed_row.setVisible(model_id is not None)
        self.remove_button.setVisible(model_id is not None and not self.entry.bundled)
        if self.embedding:
            self.installed_label.setText("Installed · the Documents page uses it")
        elif self.loaded:
            self.installed_label.setText("\u2713 Loaded · the chat uses it")
        else:
            self.installed_label.setText("Installed")
        set_tone(self.installed_label, "success" if self.loaded or self.embedding else "neutral")
        self.load_button.setVisible(not self.embedding and not self.loaded)
        # Once installed, the card offers Load (a chat model); a running download still shows
        # its progress.
        state = self.controls.state
        self.controls.setVisible(model_id is None or (state is not None
                                                      and not state.finished))

    def actions(self) -> list[QWidget]:
        """The card's buttons, in the order Tab goes through them (hidden ones are passed)."""
        return [self.hub_button, self.remove_button, self.load_button, *self.controls.buttons()]

    def _remove(self) -> None:
        if self.installed_id is not None:
            self.removeRequested.emit(self.installed_id)

