"""The Documents page: collections of the user's folders and files that the chat can answer
from, each with what its index holds, its indexing under way, and its unreadable files.

Every read and change goes through :class:`DocsController`, which does its work on workers; the
page only shows what it reports and asks the user (names, folders, confirmations).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QInputDialog, QLabel, QLineEdit,
                               QMessageBox, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from desktop.core.docs.indexer import IndexProgress
from desktop.ui.docs_controller import CollectionInfo, DocsController
from desktop.ui.style import icon, type_font
from desktop.ui.style.tokens import SPACE_S, SPACE_XL, SPACE_XXL, TYPE_SUBTITLE
from desktop.ui.views.labels import ElidedLabel, WrappedLabel, fold_button
from desktop.ui.views.page_column import page_column


def time_left(seconds: float | None) -> str:
    """"about 40 s left", "about 3 min left", or "" while there is nothing to go on."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    return f"about {round(seconds / 60)} min left"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def progress_text(progress: IndexProgress, paused: bool) -> str:
    """Where an indexing run is, in words."""
    if progress.phase == "scanning":
        return "Paused while looking for changes." if paused else "Looking for changes…"
    done = (f"{progress.files_done:,} of {progress.files_total:,} files read · "
            f"{plural(progress.chunks, 'passage')} added")
    if progress.unreadable:
        done += f" · {progress.unreadable:,} unreadable"
    if paused:
        return f"Paused: {done}."
    left = time_left(progress.seconds_left)
    return done + (f" · {left}" if left else "")


def facts_text(info: CollectionInfo) -> str:
    """'3 files · 12 passages · 1 unreadable · embedding model all-minilm'."""
    collection = info.collection
    parts = [plural(collection.files, "file"), plural(collection.chunks, "passage")]
    if collection.unreadable:
        parts.append(f"{collection.unreadable:,} unreadable")
    parts.append(f"embedding model {info.model}" if info.model else "no embeddings yet")
    return " · ".join(parts)


def state_text(info: CollectionInfo, indexing: bool, waiting: bool, paused: bool,
               no_model: bool = False) -> str:
    """The collection's state in words."""
    if indexing:
        return "Paused" if paused else "Indexing…"
    if waiting:
        return "Waits for an embedding model" if no_model else "Waiting to be indexed"
    if not info.collection.roots:
        return "Empty: add folders or files"
    return {"new": "Not indexed yet", "indexed": "Up to date",
            "incomplete": "Indexing was cut short: Index again goes on from there"}[
                info.collection.state]


class CollectionCard(QFrame):
    """One collection: its name and state, its buttons, its folders, progress and problems."""

    def __init__(self, docs: DocsController, info: CollectionInfo,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.docs = docs
        self.info = info
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("chatTitle")
        top.addWidget(self.title)
        self.state = QLabel()
        top.addWidget(self.state, 1)
        self.add_folder = QPushButton("Add folder…")
        self.add_files = QPushButton("Add files…")
        self.index_again = QPushButton("Index again")
        self.index_again.setToolTip("Read what changed in the folders since the last indexing.")
        self.rename = QPushButton("Rename…")
        self.delete = QPushButton("Delete…")
        for button in (self.add_folder, self.add_files, self.index_again, self.rename,
                       self.delete):
            top.addWidget(button)
        layout.addLayout(top)
        self.facts = QLabel()
        layout.addWidget(self.facts)
        self.roots_box = QVBoxLayout()
        layout.addLayout(self.roots_box)
        self.remove_buttons: dict[str, QPushButton] = {}
        self._root_rows: list[QWidget] = []
        self._roots_shown: tuple[str, ...] | None = None

        self.progress_row = QWidget()
        row = QHBoxLayout(self.progress_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumWidth(200)
        row.addWidget(self.bar)
        self.progress = QLabel()
        row.addWidget(self.progress, 1)
        self.pause = QPushButton("Pause")
        self.pause.clicked.connect(self._pause)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(lambda: self.docs.cancel(self.info.id))
        row.addWidget(self.pause)
        row.addWidget(self.cancel)
        self.progress_row.hide()
        layout.addWidget(self.progress_row)

        self.unreadable_header = fold_button("unreadableHeader")
        self.unreadable_header.toggled.connect(self._show_unreadable)
        layout.addWidget(self.unreadable_header)
        self.unreadable = WrappedLabel()
        self.unreadable.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.unreadable)
        self._show_unreadable(False)
        self.set_info(info)

    def set_info(self, info: CollectionInfo) -> None:
        """Show the collection as it was last read."""
        self.info = info
        name = info.name
        self.title.setText(name)
        self.facts.setText(facts_text(info))
        self.facts.setAccessibleName(f"What {name} holds")
        self.state.setAccessibleName(f"State of {name}")
        for button, what in ((self.add_folder, f"Add a folder to {name}"),
                             (self.add_files, f"Add files to {name}"),
                             (self.index_again, f"Index {name} again"),
                             (self.rename, f"Rename {name}"), (self.delete, f"Delete {name}"),
                             (self.pause, f"Pause indexing {name}"),
                             (self.cancel, f"Cancel indexing {name}")):
            button.setAccessibleName(what)
        self._show_roots(info.collection.roots)
        count = info.collection.unreadable
        self.unreadable_header.setText(f"Unreadable files ({count:,})")
        self.unreadable_header.setAccessibleName(f"Unreadable files of {name}")
        self.unreadable_header.setVisible(bool(count))
        lines = [f"{Path(path).name} ({path}): {reason}" for path, reason in info.unreadable]
        if count > len(lines):
            lines.append(f"…and {count - len(lines):,} more.")
        self.unreadable.setText("\n".join(lines))
        self._show_unreadable(self.unreadable_header.isChecked() and bool(count))
        self.show_state()

    def _show_roots(self, roots: tuple[str, ...]) -> None:
        if roots == self._roots_shown:
            return  # the same rows: the keyboard focus stays where it is
        self._roots_shown = roots
        for row in self._root_rows:
            row.hide()
            row.deleteLater()  # its button may be in the middle of its click
        self._root_rows = []
        self.remove_buttons = {}
        for root in roots:
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(12, 0, 0, 0)
            label = ElidedLabel(root)
            line.addWidget(label, 1)
            remove = QPushButton("Take out")
            remove.setToolTip("Take this folder out of the collection (the files stay where "
                              "they are).")
            remove.setAccessibleName(f"Take {root} out of {self.info.name}")
            remove.clicked.connect(lambda _=False, r=root: self.docs.remove_root(self.info.id, r))
            line.addWidget(remove)
            self.remove_buttons[root] = remove
            self.roots_box.addWidget(row)
            self._root_rows.append(row)

    def show_state(self) -> None:
        """Whether it is being indexed, waits, or is paused, and the buttons that fit."""
        docs = self.docs
        indexing = docs.indexing == self.info.id
        waiting = self.info.id in docs.waiting
        paused = indexing and docs.paused
        no_model = bool(docs.model_problem())
        self.state.setText(state_text(self.info, indexing, waiting, paused, no_model))
        self.progress_row.setVisible(indexing or (waiting and not no_model))
        self.bar.setVisible(indexing)
        self.pause.setVisible(indexing)
        self.pause.setText("Resume" if paused else "Pause")
        self.pause.setAccessibleName(f"{'Resume' if paused else 'Pause'} indexing "
                                     f"{self.info.name}")
        self.index_again.setEnabled(not (indexing or waiting) and bool(self.info.collection.roots)
                                    and not docs.model_problem())
        if indexing and docs.progress is not None:
            self.show_progress(docs.progress)
        elif waiting:
            other = docs.info(docs.indexing) if docs.indexing is not None else None
            self.progress.setText(f"Starts once {other.name} is indexed." if other is not None
                                  else "Starts once the engine is ready.")

    def show_progress(self, progress: IndexProgress) -> None:
        paused = self.docs.paused
        if progress.phase == "scanning" or not progress.files_total:
            self.bar.setRange(0, 0)  # busy: how much there is to read is not known yet
        else:
            self.bar.setRange(0, progress.files_total)
            self.bar.setValue(progress.files_done)
        self.progress.setText(progress_text(progress, paused))
        self.progress.setToolTip(progress.current or "")

    def _pause(self) -> None:
        if self.docs.paused:
            self.docs.resume()
        else:
            self.docs.pause()

    def _show_unreadable(self, shown: bool) -> None:
        self.unreadable_header.setArrowType(Qt.ArrowType.DownArrow if shown
                                            else Qt.ArrowType.RightArrow)
        self.unreadable.setVisible(shown)


class NoCollections(QWidget):
    """What the page shows before the first collection: a picture and what to do."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(SPACE_XL, SPACE_XXL, SPACE_XL, SPACE_XL)
        layout.setSpacing(SPACE_S)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._draw_picture()
        layout.addWidget(self.picture)
        title = QLabel("No collections yet")
        title.setFont(type_font(TYPE_SUBTITLE, title.font()))
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        text = QLabel("Make one with New collection…, then add the folders the chat should "
                      "answer from.")
        text.setProperty("muted", True)
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(text)

    def _draw_picture(self) -> None:
        self.picture.setPixmap(icon("file-text", "text_faint").pixmap(
            QSize(40, 40), self.devicePixelRatioF()))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._draw_picture()  # in the new theme's colour


class DocsPage(QWidget):
    """The document collections, and the buttons to make, fill, index and remove them."""

    modelsRequested = Signal()  # the user asked for the Models page (to get an embedding model)

    def __init__(self, docs: DocsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.docs = docs
        self.cards: dict[int, CollectionCard] = {}
        layout = page_column(self).layout
        intro = QLabel("Collections of your folders and files that the chat can answer from. "
                       "They are read and indexed on this computer; pick them for a chat with "
                       "its Documents button.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        buttons = QHBoxLayout()
        self.new_button = QPushButton("New collection…")
        self.new_button.setProperty("primary", True)  # the page's one main action
        self.new_button.clicked.connect(self.new_collection)
        buttons.addWidget(self.new_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        model_row = QHBoxLayout()
        self.model_notice = QLabel("")
        self.model_notice.setObjectName("chatNotice")
        self.model_notice.setWordWrap(True)
        self.model_notice.setAccessibleName("Embedding model")
        model_row.addWidget(self.model_notice, 1)
        self.models_button = QPushButton("Go to Models")
        self.models_button.clicked.connect(self.modelsRequested)
        model_row.addWidget(self.models_button)
        layout.addLayout(model_row)
        self.notice = QLabel("")
        self.notice.setObjectName("chatNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.setAccessibleName("Documents status")
        self.notice.hide()
        layout.addWidget(self.notice)
        self.empty = NoCollections()
        layout.addWidget(self.empty)
        self.list = QVBoxLayout()
        layout.addLayout(self.list)
        layout.addStretch(1)

        docs.collectionsChanged.connect(self.show_collections)
        docs.indexingChanged.connect(self._indexing_changed)
        docs.progressChanged.connect(self._progress)
        docs.message.connect(self.say)
        self.show_collections(docs.collections)
        self._indexing_changed()

    def say(self, text: str) -> None:
        """Tell the user what went wrong (or what they should know); "" hides it."""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def show_collections(self, infos: list[CollectionInfo]) -> None:
        """Show the collections as last read, keeping the cards that are still there (and so
        the keyboard focus on them)."""
        ids = {info.id for info in infos}
        for collection_id in [i for i in self.cards if i not in ids]:
            card = self.cards.pop(collection_id)
            self.list.removeWidget(card)
            card.hide()
            card.deleteLater()  # it may be in the middle of its own signal
        for position, info in enumerate(infos):
            shown = self.cards.get(info.id)
            if shown is None:
                card = self.cards[info.id] = self._make_card(info)
            else:
                card = shown
                card.set_info(info)
            if self.list.indexOf(card) != position:
                self.list.removeWidget(card)
                self.list.insertWidget(position, card)
        self.empty.setVisible(not infos)

    def _make_card(self, info: CollectionInfo) -> CollectionCard:
        card = CollectionCard(self.docs, info)
        collection_id = info.id
        card.add_folder.clicked.connect(lambda: self.add_folder(collection_id))
        card.add_files.clicked.connect(lambda: self.add_files(collection_id))
        card.index_again.clicked.connect(lambda: self.docs.index(collection_id))
        card.rename.clicked.connect(lambda: self.rename(collection_id))
        card.delete.clicked.connect(lambda: self.delete(collection_id))
        return card

    def card(self, name: str) -> CollectionCard | None:
        """The card of the collection called *name*, if it is shown."""
        return next((c for c in self.cards.values() if c.info.name == name), None)

    def _indexing_changed(self) -> None:
        problem = self.docs.model_problem()
        self.model_notice.setText(problem)
        self.model_notice.setVisible(bool(problem))
        self.models_button.setVisible(bool(problem))
        for card in self.cards.values():
            card.show_state()

    def _progress(self, progress: IndexProgress) -> None:
        card = self.cards.get(progress.collection_id)
        if card is not None:
            card.show_progress(progress)

    # -- asking the user -------------------------------------------------------------------------
    def new_collection(self) -> None:
        name, ok = QInputDialog.getText(self, "New collection",
                                        "A name for the collection (say, Work notes):")
        if ok and name.strip():
            self.say("")
            self.docs.create(name)

    def rename(self, collection_id: int) -> None:
        info = self.docs.info(collection_id)
        if info is None:
            return
        name, ok = QInputDialog.getText(self, "Rename collection", "New name:",
                                        QLineEdit.EchoMode.Normal, info.name)
        if ok and name.strip() and name.strip() != info.name:
            self.say("")
            self.docs.rename(collection_id, name)

    def delete(self, collection_id: int) -> None:
        info = self.docs.info(collection_id)
        if info is None:
            return
        answer = QMessageBox.question(
            self, "Delete collection",
            f"Delete the collection {info.name}? Its index goes; your files stay where they "
            "are, and chats that used it answer without it.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Yes:
            self.docs.delete(collection_id)

    def add_folder(self, collection_id: int) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to the collection",
                                                  str(Path.home()))
        if folder:
            self.docs.add(collection_id, [folder])

    def add_files(self, collection_id: int) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Add files to the collection", str(Path.home()),
            "Documents (*.pdf *.docx *.html *.htm *.md *.txt);;All files (*)")
        if paths:
            self.docs.add(collection_id, paths)
