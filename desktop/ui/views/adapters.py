"""The adapters panel: the LoRA stack with a scale and a switch each, presets, and the library.

One panel sits in a dock beside the chat (compact), another fills the Adapters page; both are
views of the same AdaptersController and follow each other.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.presets import StackEntry
from desktop.ui.adapters_controller import AdaptersController
from desktop.ui.models.adapters import NAME_COLUMN, STATUS_COLUMN, NameRole

SLIDER_STEPS = 100  # slider positions per unit of scale
MAX_SLIDER_SCALE = 2.0


class StackRow(QFrame):
    """One adapter in the stack: its on/off switch, a scale slider and a number field in step."""

    scaleChanged = Signal(str, float)
    enabledChanged = Signal(str, bool)
    removeRequested = Signal(str)

    def __init__(self, entry: StackEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = entry.name
        self.setFrameShape(QFrame.Shape.StyledPanel)
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 4, 6, 4)
        self.switch = QCheckBox(entry.name)
        self.switch.setAccessibleName(f"Use {entry.name}")
        self.switch.setToolTip("On: the next reply uses this adapter. Off: it stays in the "
                               "stack with its scale, but does nothing.")
        grid.addWidget(self.switch, 0, 0, 1, 2)
        self.remove_button = QToolButton()
        self.remove_button.setText("×")
        self.remove_button.setAccessibleName(f"Take {entry.name} out of the stack")
        self.remove_button.setToolTip("Take it out of the stack (it stays in the library)")
        grid.addWidget(self.remove_button, 0, 2)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setAccessibleName(f"Scale of {entry.name}")
        self.slider.setSingleStep(5)
        self.slider.setPageStep(25)
        grid.addWidget(self.slider, 1, 0, 1, 2)
        self.spin = QDoubleSpinBox()
        self.spin.setAccessibleName(f"Scale of {entry.name} (number)")
        self.spin.setDecimals(2)
        self.spin.setSingleStep(0.05)
        grid.addWidget(self.spin, 1, 2)
        grid.setColumnStretch(1, 1)
        self.show_entry(entry)
        self.switch.toggled.connect(lambda on: self.enabledChanged.emit(self.name, on))
        self.slider.valueChanged.connect(self._slid)
        self.spin.valueChanged.connect(self._typed)
        self.remove_button.clicked.connect(lambda: self.removeRequested.emit(self.name))

    def show_entry(self, entry: StackEntry) -> None:
        """Show *entry* without reporting it back as a change."""
        limit = max(MAX_SLIDER_SCALE, abs(entry.scale))  # presets from the API may go further
        for widget in (self.switch, self.slider, self.spin):
            widget.blockSignals(True)
        self.switch.setChecked(entry.enabled)
        self.slider.setRange(round(-limit * SLIDER_STEPS), round(limit * SLIDER_STEPS))
        self.spin.setRange(-limit, limit)
        self.slider.setValue(round(entry.scale * SLIDER_STEPS))
        self.spin.setValue(entry.scale)
        for widget in (self.switch, self.slider, self.spin):
            widget.blockSignals(False)

    @property
    def scale(self) -> float:
        return float(self.spin.value())

    def _slid(self, value: int) -> None:
        scale = value / SLIDER_STEPS
        self.spin.blockSignals(True)
        self.spin.setValue(scale)
        self.spin.blockSignals(False)
        self.scaleChanged.emit(self.name, scale)

    def _typed(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * SLIDER_STEPS))
        self.slider.blockSignals(False)
        self.scaleChanged.emit(self.name, float(value))


class AdaptersPanel(QWidget):
    """Stack, presets and library of LoRA adapters; *compact* for the dock beside the chat."""

    def __init__(self, controller: AdaptersController, compact: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.compact = compact
        self.rows: dict[str, StackRow] = {}
        self._selected: str | None = None

        self.model_label = QLabel("No model is loaded: adapters change a loaded model.")
        self.model_label.setWordWrap(True)
        self.notice = QLabel("")
        self.notice.setObjectName("adapterNotice")
        self.notice.setAccessibleName("Adapter messages")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()

        stack_box = QGroupBox("In use")
        stack_box.setToolTip("The next reply applies these adapters, each at its scale")
        self.stack_layout = QVBoxLayout(stack_box)
        self.stack_empty = QLabel("No adapters in use. Add one to the library, or choose one "
                                  "there and press Use: the next reply applies it.")
        self.stack_empty.setWordWrap(True)
        self.stack_layout.addWidget(self.stack_empty)

        preset_box = QGroupBox("Presets")
        preset_layout = QVBoxLayout(preset_box)
        self.preset_picker = QComboBox()
        self.preset_picker.setAccessibleName("Presets")
        self.preset_picker.setModel(controller.preset_model)
        self.preset_picker.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset_picker.setMinimumContentsLength(12)
        preset_layout.addWidget(self.preset_picker)
        self.active_preset = QLabel("")
        self.active_preset.setWordWrap(True)
        preset_layout.addWidget(self.active_preset)
        row = QHBoxLayout()
        self.apply_preset_button = QPushButton("Apply")
        self.apply_preset_button.setAccessibleName("Apply preset")
        self.delete_preset_button = QPushButton("Delete")
        self.delete_preset_button.setAccessibleName("Delete preset")
        row.addWidget(self.apply_preset_button)
        row.addWidget(self.delete_preset_button)
        preset_layout.addLayout(row)
        self.preset_name = QLineEdit()
        self.preset_name.setAccessibleName("Preset name")
        self.preset_name.setPlaceholderText("Name, e.g. pirate-sql")
        preset_layout.addWidget(self.preset_name)
        row = QHBoxLayout()
        self.save_preset_button = QPushButton("Save stack")
        self.save_preset_button.setAccessibleName("Save the stack as a preset")
        self.save_preset_button.setToolTip("Save the adapters in use, with their scales and "
                                           "switches, under the name typed above")
        self.rename_preset_button = QPushButton("Rename")
        self.rename_preset_button.setAccessibleName("Rename preset")
        self.rename_preset_button.setToolTip("Give the chosen preset the name typed above")
        row.addWidget(self.save_preset_button)
        row.addWidget(self.rename_preset_button)
        preset_layout.addLayout(row)

        library_box = QGroupBox("Library")
        library_layout = QVBoxLayout(library_box)
        self.table = QTableView()
        self.table.setAccessibleName("Adapter library")
        self.table.setModel(controller.adapter_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        if compact:
            for column in range(controller.adapter_model.columnCount()):
                self.table.setColumnHidden(column, column not in (NAME_COLUMN, STATUS_COLUMN))
        library_layout.addWidget(self.table, 1)
        self.details = QLabel("")
        self.details.setAccessibleName("Adapter details")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        library_layout.addWidget(self.details)
        buttons = QGridLayout()
        self.add_button = QToolButton()
        self.add_button.setText("Add…")
        self.add_button.setAccessibleName("Add an adapter")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.add_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        menu = QMenu(self.add_button)
        menu.addAction("GGUF LoRA or PEFT file…", self._choose_file)
        menu.addAction("PEFT adapter folder…", self._choose_folder)
        self.add_button.setMenu(menu)
        self.use_button = QPushButton("Use")
        self.use_button.setAccessibleName("Use the chosen adapter")
        self.rename_button = QPushButton("Rename")
        self.rename_button.setAccessibleName("Rename the chosen adapter")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setAccessibleName("Remove the chosen adapter")
        per_row = 2 if compact else 4  # the dock is narrow
        for index, button in enumerate((self.add_button, self.use_button, self.rename_button,
                                        self.remove_button)):
            buttons.addWidget(button, index // per_row, index % per_row)
        library_layout.addLayout(buttons)
        row = QHBoxLayout()
        self.hub_ref = QLineEdit()
        self.hub_ref.setAccessibleName("Adapter on the hub")
        self.hub_ref.setPlaceholderText("OWNER/REPO/adapter.gguf")
        self.hub_ref.setToolTip("A GGUF LoRA file, or OWNER/REPO/adapter_config.json for a "
                                "PEFT adapter; it is checked like a model download")
        self.download_button = QPushButton("Download")
        self.download_button.setAccessibleName("Download the adapter")
        row.addWidget(self.hub_ref, 1)
        row.addWidget(self.download_button)
        library_layout.addLayout(row)

        outer = QVBoxLayout(self)
        if compact:
            outer.setContentsMargins(4, 4, 4, 4)
            content = QWidget()
            parts = QVBoxLayout(content)
            parts.setContentsMargins(0, 0, 0, 0)
            for part in (self.model_label, self.notice, stack_box, preset_box):
                parts.addWidget(part)
            parts.addWidget(library_box, 1)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setWidget(content)
            outer.addWidget(scroll)
            self.setMinimumWidth(content.minimumSizeHint().width()
                                 + scroll.verticalScrollBar().sizeHint().width() + 8)
        else:
            outer.addWidget(self.model_label)
            outer.addWidget(self.notice)
            columns = QHBoxLayout()
            columns.addWidget(library_box, 3)
            right = QVBoxLayout()
            right.addWidget(stack_box)
            right.addWidget(preset_box)
            right.addStretch(1)
            columns.addLayout(right, 2)
            outer.addLayout(columns, 1)

        self.apply_preset_button.clicked.connect(self._apply_preset)
        self.delete_preset_button.clicked.connect(self._delete_preset)
        self.save_preset_button.clicked.connect(self._save_preset)
        self.rename_preset_button.clicked.connect(self._rename_preset)
        self.use_button.clicked.connect(self._use)
        self.rename_button.clicked.connect(self._rename)
        self.remove_button.clicked.connect(self._remove)
        self.download_button.clicked.connect(self._download)
        self.hub_ref.returnPressed.connect(self._download)
        self.table.doubleClicked.connect(lambda _index: self._use())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection())
        controller.adapter_model.modelReset.connect(self._reselect)
        controller.stackChanged.connect(self.show_stack)
        controller.entryChanged.connect(self._entry_changed)
        controller.presetChanged.connect(self._preset_changed)
        controller.presetsChanged.connect(self._presets_changed)
        controller.modelChanged.connect(self._model_changed)
        controller.message.connect(self.show_message)
        self.show_stack()
        self._model_changed(controller.model_id)
        self._preset_changed(controller.active_preset)
        self._presets_changed()
        self._selection()

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        if self.compact:  # wide enough beside the chat for a slider that can be aimed
            hint.setWidth(max(hint.width(), 340))
        return hint

    # -- what the panel shows --------------------------------------------------------------------
    def show_message(self, text: str, problem: bool = False) -> None:
        self.notice.setText(text)
        self.notice.setProperty("problem", problem)  # the theme's warning colour
        self.notice.style().polish(self.notice)
        self.notice.setVisible(bool(text))

    def show_stack(self) -> None:
        """Rebuild the rows from the controller's stack."""
        for row in self.rows.values():
            self.stack_layout.removeWidget(row)
            row.deleteLater()
        self.rows.clear()
        for entry in self.controller.stack:
            row = StackRow(entry)
            row.scaleChanged.connect(self.controller.set_scale)
            row.enabledChanged.connect(self.controller.set_enabled)
            row.removeRequested.connect(self.controller.take_off)
            self.stack_layout.addWidget(row)
            self.rows[entry.name] = row
        self.stack_empty.setVisible(not self.rows)
        self._selection()

    def _entry_changed(self, name: str) -> None:
        entry = next((e for e in self.controller.stack if e.name == name), None)
        row = self.rows.get(name)
        if entry is not None and row is not None:
            row.show_entry(entry)

    def _preset_changed(self, name: str | None) -> None:
        self.active_preset.setText(f"In use: the preset '{name}'." if name else "")
        self.active_preset.setVisible(bool(name))
        if name:
            index = self.controller.preset_model.row_of(name)
            if index >= 0:
                self.preset_picker.setCurrentIndex(index)

    def _presets_changed(self) -> None:
        has = self.controller.preset_model.rowCount() > 0
        for button in (self.apply_preset_button, self.delete_preset_button,
                       self.rename_preset_button):
            button.setEnabled(has)
        self._preset_changed(self.controller.active_preset)

    def _model_changed(self, model_id: str | None) -> None:
        self.model_label.setText(
            f"Adapters change {model_id} from its next reply on, without reloading it."
            if model_id else "No model is loaded: adapters change a loaded model.")

    # -- the library -------------------------------------------------------------------------------
    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(NameRole) if rows else None

    def select(self, name: str) -> bool:
        row = self.controller.adapter_model.row_of(name)
        if row < 0:
            return False
        self.table.selectionModel().select(
            self.controller.adapter_model.index(row, 0),
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)
        return True

    def _reselect(self) -> None:
        if self._selected is None or not self.select(self._selected):
            self._selection()

    def _selection(self) -> None:
        name = self.selected_name()
        if name is not None:
            self._selected = name
        model = self.controller.adapter_model
        adapter = model.adapter(model.row_of(name)) if name is not None else None
        self.details.setText(adapter.details() if adapter is not None else
                             "Choose an adapter to see what it was made for.")
        self.use_button.setEnabled(adapter is not None and adapter.usable
                                   and name not in self.rows)
        self.rename_button.setEnabled(adapter is not None)
        self.remove_button.setEnabled(adapter is not None)

    def add_path(self, path: str) -> None:
        """Add the adapter at *path* (what the file and folder choosers do)."""
        if path:
            self.controller.add_path(path)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Add a LoRA adapter", "",
            "LoRA adapters (*.gguf adapter_config.json adapter_model.safetensors);;"
            "All files (*)")
        self.add_path(path)

    def _choose_folder(self) -> None:
        self.add_path(QFileDialog.getExistingDirectory(self, "Add a PEFT adapter folder"))

    def _download(self) -> None:
        self.controller.add_from_hub(self.hub_ref.text())

    def _use(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.controller.use(name)

    def _rename(self) -> None:
        name = self.selected_name()
        if name is not None:
            row = self.controller.adapter_model.row_of(name)
            self.table.edit(self.controller.adapter_model.index(row, NAME_COLUMN))

    def _remove(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        answer = QMessageBox.question(
            self, "Remove adapter", f"Delete '{name}' from the library? Its file is deleted, "
            "and presets that use it will leave it out.")
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.remove_adapter(name)

    # -- presets ---------------------------------------------------------------------------------
    def chosen_preset(self) -> str | None:
        return self.preset_picker.currentData(NameRole)

    def _apply_preset(self) -> None:
        name = self.chosen_preset()
        if name is not None:
            self.controller.apply_preset(name)

    def _delete_preset(self) -> None:
        name = self.chosen_preset()
        if name is not None:
            self.controller.delete_preset(name)

    def _save_preset(self) -> None:
        name = self.preset_name.text().strip()
        if not name:
            self.show_message("Type a name for the preset first.", True)
            return
        self.controller.save_preset(name)
        self.preset_name.clear()

    def _rename_preset(self) -> None:
        name, new_name = self.chosen_preset(), self.preset_name.text().strip()
        if name is None:
            return
        if not new_name:
            self.show_message("Type the preset's new name first.", True)
            return
        self.controller.rename_preset(name, new_name)
        self.preset_name.clear()
