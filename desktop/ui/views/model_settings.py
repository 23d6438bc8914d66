"""Per-model settings beside the chat: sampling applies to the next reply, loading ones reload."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from desktop.core.memory import MAX_PARALLEL
from desktop.core.settings import ModelSettings

# (field, label, minimum, maximum, step, decimals, default shown when unset)
SAMPLING = (
    ("temperature", "Temperature", 0.0, 2.0, 0.05, 2, 0.8),
    ("top_p", "Top P", 0.0, 1.0, 0.01, 2, 0.95),
    ("top_k", "Top K", 0, 500, 1, 0, 40),
    ("min_p", "Min P", 0.0, 1.0, 0.01, 2, 0.05),
    ("repeat_penalty", "Repeat penalty", 0.01, 3.0, 0.01, 2, 1.0),
    ("max_tokens", "Max tokens", 0, 131072, 64, 0, 0),
    ("thinking_budget", "Thinking budget", 0, 131072, 64, 0, 0),
)
LOADING = (
    ("n_ctx", "Context length", 0, 1_048_576, 512, 0, 0),
    ("n_threads", "Threads", 0, 256, 1, 0, 0),
    ("n_gpu_layers", "GPU layers", 0, 999, 1, 0, 0),
    ("parallel", "Parallel replies", 0, MAX_PARALLEL, 1, 0, 0),
)
# What a field shows at 0, where 0 means "no limit" or "as the engine sees fit".
AT_ZERO = {"max_tokens": "No limit", "thinking_budget": "No limit", "n_ctx": "Default",
           "n_threads": "One per core", "parallel": "As memory allows"}


class ModelSettingsPanel(QWidget):
    """Edits one model's ModelSettings; emits the new settings and whether to reload."""

    #: (model id, new settings, reload needed)
    changed = Signal(str, object, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_id = ""
        self.settings = ModelSettings()
        layout = QVBoxLayout(self)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.fields: dict[str, QSpinBox | QDoubleSpinBox] = {}
        sampling = QGroupBox("Sampling (next reply)")
        form = QFormLayout(sampling)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)  # a narrow panel
        for spec in SAMPLING:
            form.addRow(spec[1], self._field(spec))
        layout.addWidget(sampling)
        loading = QGroupBox("Loading (reloads the model)")
        load_form = QFormLayout(loading)
        load_form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        for spec in LOADING:
            load_form.addRow(spec[1], self._field(spec))
        self.reload_button = QPushButton("Apply and reload")
        self.reload_button.setAccessibleName("Apply loading settings and reload the model")
        self.reload_button.clicked.connect(self._reload)
        load_form.addRow(self.reload_button)
        layout.addWidget(loading)
        self.defaults_button = QPushButton("Reset to defaults")
        self.defaults_button.clicked.connect(self._defaults)
        layout.addWidget(self.defaults_button)
        layout.addStretch(1)

    def _field(self, spec: tuple) -> QWidget:  # type: ignore[type-arg]
        name, label, low, high, step, decimals, _ = spec
        box: QSpinBox | QDoubleSpinBox
        if decimals:
            box = QDoubleSpinBox()
            box.setDecimals(decimals)
        else:
            box = QSpinBox()
        box.setRange(low, high)
        box.setSingleStep(step)
        box.setAccessibleName(label)
        if name in AT_ZERO:
            box.setSpecialValueText(AT_ZERO[name])
            box.setToolTip(f"0: {AT_ZERO[name].lower()}")
        if name in dict((s[0], s) for s in SAMPLING):
            box.valueChanged.connect(self._sampling_changed)
        self.fields[name] = box
        return box

    def set_model(self, model_id: str, settings: ModelSettings) -> None:
        self.model_id = model_id
        self.settings = settings
        self.title.setText(f"Settings for <b>{model_id}</b>")
        for name, _, _, _, _, _, default in SAMPLING + LOADING:
            value = getattr(settings, name)
            box = self.fields[name]
            box.blockSignals(True)
            box.setValue(default if value is None else value)
            box.blockSignals(False)

    def current(self) -> ModelSettings:
        values = {}
        for name, _, _, _, _, decimals, default in SAMPLING + LOADING:
            value = self.fields[name].value()
            if name in ("max_tokens", "thinking_budget", "n_ctx", "n_threads",
                        "parallel") and value == 0:
                values[name] = None
            elif value == default and name not in ("n_gpu_layers",):
                values[name] = None  # unchanged: keep following the default
            else:
                values[name] = round(value, decimals) if decimals else int(value)
        return replace(self.settings, **values)

    def _sampling_changed(self) -> None:
        if self.model_id:
            self.settings = self.current()
            self.changed.emit(self.model_id, self.settings, False)

    def _reload(self) -> None:
        if self.model_id:
            self.settings = self.current()
            self.changed.emit(self.model_id, self.settings, True)

    def _defaults(self) -> None:
        self.set_model(self.model_id, replace(ModelSettings(),
                                              chat_template=self.settings.chat_template))
        self._reload()
