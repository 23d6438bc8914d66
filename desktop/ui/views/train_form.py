"""The Train page's form: the base model, the examples, the adapter's name, the preset, and
the knobs in an Advanced fold; and the dialog that picks chats to learn from.

The form only says what the user chose (:meth:`TrainForm.settings`) and when it changed; the
page has it checked and the data read by the controller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core.chats import ConversationEntry
from desktop.train import TrainError
from desktop.train.settings import ATTENTION, MLP, PRESETS, TrainSettings
from desktop.ui.views.labels import ElidedLabel, WrappedLabel, fold_button

PRESET_NAMES = {
    "quick": "Quick: rank 8 on the query and value projections, 2 passes",
    "careful": "Careful: rank 16 on every projection, 3 passes, a gentler rate",
}
DATA_FILTER = "Examples (*.jsonl *.ndjson *.json *.csv *.tsv);;All files (*)"


class ChatPicker(QDialog):
    """Saved conversations with a check box each: the answers in them are what is learned."""

    def __init__(self, entries: list[ConversationEntry], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Teach it to answer like this")
        layout = QVBoxLayout(self)
        about = WrappedLabel("Pick the chats whose answers the model should learn to give. Each "
                             "chat is one example, up to its first reply that did not finish.")
        layout.addWidget(about)
        self.list = QListWidget()
        self.list.setAccessibleName("Chats to learn from")
        for entry in entries:
            item = QListWidgetItem(f"{entry.conversation.title} ({entry.group})")
            item.setData(Qt.ItemDataRole.UserRole, entry.conversation.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.list.addItem(item)
        layout.addWidget(self.list, 1)
        if not entries:
            layout.addWidget(QLabel("There are no saved chats yet."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(480, 420)

    def check(self, ids: list[int]) -> None:
        """Tick the chats *ids* (and untick the others)."""
        for row in range(self.list.count()):
            item = self.list.item(row)
            wanted = item.data(Qt.ItemDataRole.UserRole) in ids
            item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)

    def chosen(self) -> list[int]:
        """The ids of the chats ticked, in the list's order."""
        return [int(self.list.item(row).data(Qt.ItemDataRole.UserRole))
                for row in range(self.list.count())
                if self.list.item(row).checkState() == Qt.CheckState.Checked]


class TrainForm(QWidget):
    """What to train, on what, and how."""

    changed = Signal()  # something the settings are made of changed
    fileChosen = Signal(str)  # a data file was chosen
    chatsRequested = Signal()  # the user asked to pick chats

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data_source = ""  # the data file's path, or what the chats were
        self._name_edited = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        layout.addLayout(form)

        self.model = QComboBox()
        self.model.setAccessibleName("Base model")
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(24)
        self.model.currentIndexChanged.connect(lambda _: self.changed.emit())
        form.addRow("Base model", self.model)
        self.model_note = WrappedLabel()
        self.model_note.setProperty("muted", True)
        self.model_note.setAccessibleName("Models that cannot be trained")
        self.model_note.hide()
        form.addRow("", self.model_note)

        data_row = QHBoxLayout()
        self.choose_file = QPushButton("Choose a file…")
        self.choose_file.setToolTip("JSONL of chats or of prompt/response pairs, or a CSV file "
                                    "of two columns (prompt, answer)")
        self.choose_file.clicked.connect(self.ask_file)
        self.choose_chats = QPushButton("Pick chats…")
        self.choose_chats.setToolTip("Teach it to answer like this: chats from your history")
        self.choose_chats.clicked.connect(self.chatsRequested)
        self.data_label = ElidedLabel("No examples chosen yet")
        self.data_label.setProperty("muted", True)
        self.data_label.setAccessibleName("Examples chosen")
        data_row.addWidget(self.choose_file)
        data_row.addWidget(self.choose_chats)
        data_row.addWidget(self.data_label, 1)
        form.addRow("Examples", data_row)

        self.name = QLineEdit()
        self.name.setAccessibleName("Adapter name")
        self.name.setPlaceholderText("The new adapter's name in the library")
        self.name.textEdited.connect(self._name_typed)
        form.addRow("Adapter name", self.name)

        self.preset = QComboBox()
        self.preset.setAccessibleName("Preset")
        for key in PRESETS:
            self.preset.addItem(PRESET_NAMES.get(key, key), key)
        self.preset.currentIndexChanged.connect(self._preset_chosen)
        form.addRow("Preset", self.preset)

        self.advanced_button = fold_button("advancedHeader")
        self.advanced_button.setText("Advanced")
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.toggled.connect(self._fold)
        layout.addWidget(self.advanced_button)
        self.advanced = QWidget()
        self._knobs(QFormLayout(self.advanced))
        self.advanced.hide()
        layout.addWidget(self.advanced)
        self._preset_chosen()

    def _knobs(self, form: QFormLayout) -> None:
        self.rank = QSpinBox()
        self.rank.setRange(1, 1024)
        self.alpha = QDoubleSpinBox()
        self.alpha.setRange(0.5, 4096)
        self.alpha.setDecimals(1)
        form.addRow("Rank", self.rank)
        form.addRow("Alpha", self.alpha)
        targets = QHBoxLayout()
        self.targets: dict[str, QPushButton] = {}
        for name in ATTENTION + MLP:
            chip = QPushButton(name)
            chip.setCheckable(True)
            chip.setProperty("chip", True)
            chip.setAccessibleName(f"Target {name}")
            chip.toggled.connect(lambda _: self.changed.emit())
            self.targets[name] = chip
            targets.addWidget(chip)
        targets.addStretch(1)
        form.addRow("Target modules", targets)
        length = QHBoxLayout()
        self.epochs = QDoubleSpinBox()
        self.epochs.setRange(0.1, 1000)
        self.epochs.setDecimals(1)
        self.epochs.setAccessibleName("Epochs")
        self.steps = QSpinBox()
        self.steps.setRange(1, 1_000_000)
        self.steps.setAccessibleName("Steps")
        self.unit = QComboBox()
        self.unit.setAccessibleName("Train for epochs or steps")
        self.unit.addItem("passes over the examples (epochs)", "epochs")
        self.unit.addItem("steps", "steps")
        self.unit.currentIndexChanged.connect(self._unit_chosen)
        length.addWidget(self.epochs)
        length.addWidget(self.steps)
        length.addWidget(self.unit)
        length.addStretch(1)
        form.addRow("Train for", length)
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(5)
        self.learning_rate.setRange(0.00001, 1.0)
        self.learning_rate.setSingleStep(0.0001)
        form.addRow("Learning rate", self.learning_rate)
        self.max_length = QSpinBox()
        self.max_length.setRange(16, 32768)
        self.max_length.setSingleStep(64)
        self.max_length.setSuffix(" tokens")
        form.addRow("Maximum length", self.max_length)
        self.threads = QSpinBox()
        self.threads.setRange(0, max(1, os.cpu_count() or 1))
        self.threads.setSpecialValueText("Automatic (one per core)")
        form.addRow("Threads", self.threads)
        self.checkpoint_every = QSpinBox()
        self.checkpoint_every.setRange(1, 100_000)
        self.checkpoint_every.setValue(10)
        self.checkpoint_every.setPrefix("every ")
        self.checkpoint_every.setSuffix(" steps")
        self.checkpoint_every.setToolTip("A quit or a crash loses at most this many steps; the "
                                         "held-out loss is measured as often.")
        form.addRow("Checkpoints", self.checkpoint_every)
        for label, box in (("Rank", self.rank), ("Alpha", self.alpha),
                           ("Learning rate", self.learning_rate),
                           ("Maximum length", self.max_length), ("Threads", self.threads),
                           ("Checkpoint interval", self.checkpoint_every)):
            box.setAccessibleName(label)
        for box in (self.rank, self.alpha, self.epochs, self.steps, self.learning_rate,
                    self.max_length, self.threads, self.checkpoint_every):
            box.valueChanged.connect(lambda _: self.changed.emit())

    # -- what is offered ---------------------------------------------------------------------------
    def set_models(self, checks: list[Any]) -> None:
        """Offer the installed chat models; those that cannot be trained are shown greyed, with
        the reason in their tooltip and under the list."""
        wanted = self.model.currentData()
        self.model.blockSignals(True)
        self.model.clear()
        reasons = []
        for check in checks:
            model = check.model
            text = model.name if check.trainable else f"{model.name} (cannot be trained)"
            self.model.addItem(text, str(model.path))
            index = self.model.count() - 1
            if not check.trainable:
                item = self.model.model().item(index)  # type: ignore[attr-defined]
                item.setEnabled(False)
                item.setToolTip(check.reason)
                reasons.append(f"{model.name}: {check.reason}")
        chosen = self.model.findData(wanted) if wanted else -1
        if chosen < 0 or not checks[chosen].trainable:
            chosen = next((i for i, c in enumerate(checks) if c.trainable), -1)
        self.model.setCurrentIndex(chosen)
        self.model.blockSignals(False)
        self.model_note.setText("Cannot be trained here: " + " ".join(reasons) if reasons else "")
        self.model_note.setVisible(bool(reasons))
        if not any(c.trainable for c in checks):
            self.model.setPlaceholderText("No installed model can be trained")
        self.changed.emit()

    def set_data(self, label: str, source: str, name: str) -> None:
        """Show the examples read (*label*: "zorblax.jsonl: 32 examples"), from *source*; *name*
        is a free name for the adapter, taken unless the user typed one."""
        self.data_source = source
        self.data_label.setText(label)
        if not self._name_edited or not self.name.text().strip():
            self.suggest_name(name)
        else:
            self.changed.emit()

    def suggest_name(self, name: str) -> None:
        """Put *name* in the name field, as one the user did not type."""
        self.name.setText(name)
        self._name_edited = False
        self.changed.emit()

    def clear_data(self, why: str) -> None:
        self.data_source = ""
        self.data_label.setText(why)
        self.changed.emit()

    def ask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Examples to learn from", str(Path.home()),
                                              DATA_FILTER)
        if path:
            self.fileChosen.emit(path)

    # -- what is chosen ----------------------------------------------------------------------------
    @property
    def base_model(self) -> str | None:
        data = self.model.currentData()
        return str(data) if data else None

    def settings(self) -> TrainSettings:
        """The run the form describes; :class:`TrainError` says what is missing or wrong."""
        if not self.base_model:
            raise TrainError("Choose a base model to train (a chat model on the Models page).")
        if not self.data_source:
            raise TrainError("Choose the examples to learn from: a file, or chats.")
        by_steps = self.unit.currentData() == "steps"
        return TrainSettings.from_preset(
            str(self.preset.currentData()), base_model=self.base_model, data=self.data_source,
            name=self.name.text().strip(), rank=self.rank.value(), alpha=self.alpha.value(),
            targets=tuple(n for n, chip in self.targets.items() if chip.isChecked()),
            steps=self.steps.value() if by_steps else None,
            epochs=None if by_steps else self.epochs.value(),
            learning_rate=self.learning_rate.value(), max_length=self.max_length.value(),
            threads=self.threads.value(), checkpoint_every=self.checkpoint_every.value(),
            eval_every=self.checkpoint_every.value())

    def set_knobs(self, **values: Any) -> None:
        """Set knobs by their settings' names (rank, steps, learning_rate, threads, …)."""
        for key, value in values.items():
            if key == "steps":
                self.unit.setCurrentIndex(self.unit.findData("steps"))
            elif key == "epochs":
                self.unit.setCurrentIndex(self.unit.findData("epochs"))
            if key == "targets":
                for name, chip in self.targets.items():
                    chip.setChecked(name in value)
            else:
                getattr(self, key).setValue(value)

    # -- reactions ---------------------------------------------------------------------------------
    def _name_typed(self, _text: str) -> None:
        self._name_edited = True
        self.changed.emit()

    def _preset_chosen(self, _index: int = 0) -> None:
        preset = PRESETS[str(self.preset.currentData())]
        widgets = [self.rank, self.alpha, self.epochs, self.learning_rate, self.max_length,
                   self.unit, *self.targets.values()]
        for widget in widgets:
            widget.blockSignals(True)
        self.rank.setValue(preset["rank"])
        self.alpha.setValue(preset["alpha"])
        self.epochs.setValue(preset["epochs"])
        self.learning_rate.setValue(preset["learning_rate"])
        self.max_length.setValue(preset["max_length"])
        self.unit.setCurrentIndex(self.unit.findData("epochs"))
        for name, chip in self.targets.items():
            chip.setChecked(name in preset["targets"])
        for widget in widgets:
            widget.blockSignals(False)
        self._unit_chosen()

    def _unit_chosen(self, _index: int = 0) -> None:
        by_steps = self.unit.currentData() == "steps"
        self.steps.setVisible(by_steps)
        self.epochs.setVisible(not by_steps)
        self.changed.emit()

    def _fold(self, shown: bool) -> None:
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if shown
                                          else Qt.ArrowType.RightArrow)
        self.advanced.setVisible(shown)

    def set_enabled(self, enabled: bool) -> None:
        """While a run is going, nothing of it can be changed."""
        for widget in (self.model, self.choose_file, self.choose_chats, self.name, self.preset,
                       self.advanced):
            widget.setEnabled(enabled)
