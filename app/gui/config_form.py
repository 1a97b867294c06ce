"""A form generated from a config dataclass: one widget per field, of the right kind.

Fields are declared with :func:`engine.models.base.param`, whose metadata gives the form
everything it shows: the ``help`` text becomes the tooltip, ``min``/``max`` bound the
spin boxes, ``choices`` turn a text field into a combo box. The form never decides
validity itself: :meth:`ConfigForm.validate` asks the dataclass (``from_dict``), so the
form, the command line and the worker accept exactly the same values.

Run alone: ``python -m app.gui.config_form`` shows the CaFe and training forms.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from engine.errors import ConfigError

INT_LIMIT = 2**31 - 1
# how an empty choice (e.g. no second protocol) reads in a list
NONE_LABEL = "(none)"


class FloatBox(QDoubleSpinBox):
    """A float spin box that shows values as written (0.001, 1e-05), not 0.001000."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setDecimals(12)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:
        return f"{value:g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text, pos):
        from PySide6.QtGui import QValidator

        stripped = text.strip()
        if stripped in ("", "-", ".", "-.") or stripped.lower().endswith(("e", "e-")):
            return QValidator.State.Intermediate, text, pos
        try:
            float(stripped)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        return QValidator.State.Acceptable, text, pos


def field_kind(f: dataclasses.Field) -> str:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    return str(kind)


def tooltip(f: dataclasses.Field, default: Any) -> str:
    meta = f.metadata
    parts = [meta.get("help", "")]
    bounds = []
    if "min" in meta:
        bounds.append(f"at least {meta['min']}")
    if "max" in meta:
        bounds.append(f"at most {meta['max']}")
    if bounds:
        parts.append("Must be " + " and ".join(bounds) + ".")
    parts.append(f"Default: {default}.")
    return " ".join(p for p in parts if p)


class ConfigForm(QWidget):
    """Editable values of one config dataclass; ``values()`` returns a plain dict."""

    changed = Signal()

    def __init__(
        self,
        config_class: type,
        parent: QWidget | None = None,
        skip: tuple[str, ...] = (),
        choices: dict[str, list[str]] | None = None,
    ):
        super().__init__(parent)
        self.config_class = config_class
        self.defaults = config_class()
        self.extra_choices = choices or {}
        self.fields = [
            f for f in dataclasses.fields(config_class) if f.name not in skip
        ]
        self.widgets: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        for f in self.fields:
            widget = self._make_widget(f)
            widget.setObjectName(f.name)
            if isinstance(widget, QSpinBox | QDoubleSpinBox):
                widget.setMinimumWidth(120)
            widget.setToolTip(tooltip(f, getattr(self.defaults, f.name)))
            self.widgets[f.name] = widget
            layout.addRow(f.name.replace("_", " "), widget)
            layout.labelForField(widget).setToolTip(widget.toolTip())
        self.reset()

    # -- building

    def _make_widget(self, f: dataclasses.Field) -> QWidget:
        kind, meta = field_kind(f), f.metadata
        options = self.extra_choices.get(f.name) or meta.get("choices")
        if options:
            box = QComboBox()
            for choice in map(str, options):
                # an empty choice means "none", and says so
                box.addItem(choice or NONE_LABEL, choice)
            box.setEditable(f.name in self.extra_choices and "choices" not in meta)
            box.currentTextChanged.connect(self.changed)
            return box
        if kind == "bool":
            check = QCheckBox()
            check.toggled.connect(self.changed)
            return check
        if kind == "int":
            spin = QSpinBox()
            spin.setRange(
                int(meta.get("min", -INT_LIMIT)), int(meta.get("max", INT_LIMIT))
            )
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(self.changed)
            return spin
        if kind == "float":
            spin = FloatBox()
            low = meta.get("min", -math.inf)
            high = meta.get("max", math.inf)
            spin.setRange(float(low), float(high))
            spin.setSingleStep(_step(getattr(self.defaults, f.name)))
            spin.valueChanged.connect(self.changed)
            return spin
        edit = QLineEdit()
        edit.textChanged.connect(self.changed)
        return edit

    # -- values

    def set_value(self, name: str, value: Any) -> None:
        widget = self.widgets[name]
        if isinstance(widget, QComboBox):
            index = widget.findData(str(value))
            if index < 0 and widget.isEditable():
                widget.setEditText(str(value))
            elif index >= 0:
                widget.setCurrentIndex(index)
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QSpinBox):
            widget.setValue(int(value))
        elif isinstance(widget, QDoubleSpinBox):
            widget.setValue(float(value))
        elif isinstance(widget, QLineEdit):
            widget.setText(str(value))

    def value(self, name: str) -> Any:
        widget = self.widgets[name]
        if isinstance(widget, QComboBox):
            # a listed choice by its value; in an editable box, text typed as it is
            index = widget.findText(widget.currentText())
            return widget.itemData(index) if index >= 0 else widget.currentText()
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QSpinBox | QDoubleSpinBox):
            # text typed but not yet committed (no Enter, focus still in the box, as
            # with a launch by shortcut) is what the user sees: take it
            widget.interpretText()
            return widget.value()
        return widget.text()

    def values(self) -> dict[str, Any]:
        return {f.name: self.value(f.name) for f in self.fields}

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill the fields named in ``values``; names this form lacks are ignored."""
        for name, value in values.items():
            if name in self.widgets:
                self.set_value(name, value)

    def reset(self) -> None:
        for f in self.fields:
            self.set_value(f.name, getattr(self.defaults, f.name))

    def validate(self, extra: dict[str, Any] | None = None) -> Any:
        """The config built from the form (plus ``extra`` fields); ConfigError if bad.

        The widget of the field named in the error is marked, so the user sees where.
        """
        for widget in self.widgets.values():
            widget.setStyleSheet("")
        for name, widget in self.widgets.items():
            if isinstance(widget, QSpinBox | QDoubleSpinBox):
                # before interpretText(), which puts the last value back over it
                if not widget.hasAcceptableInput():
                    # half-typed ("1e-", "") or out of range: never launch the old value
                    widget.setStyleSheet("border: 1px solid #d0302f;")
                    raise ConfigError(
                        f"{name} reads {widget.text()!r}, which is not a number in "
                        f"{widget.minimum():g}..{widget.maximum():g}."
                    )
        try:
            return self.config_class.from_dict({**self.values(), **(extra or {})})
        except ConfigError as exc:
            for name, widget in self.widgets.items():
                if f".{name} " in str(exc) or str(exc).startswith(f"{name} "):
                    widget.setStyleSheet("border: 1px solid #d0302f;")
            raise


def _step(default: Any) -> float:
    """A spin step of the default's order of magnitude (1e-3 steps by 1e-4)."""
    value = abs(float(default))
    if value == 0 or value >= 1:
        return 0.1 if value < 10 else 1.0
    return 10 ** (math.floor(math.log10(value)) - 1) * 1.0


def main() -> int:
    import sys

    from PySide6.QtWidgets import QApplication, QHBoxLayout

    from engine.models import REGISTRY
    from engine.training import TrainConfig

    app = QApplication(sys.argv)
    window = QWidget()
    row = QHBoxLayout(window)
    row.addWidget(ConfigForm(REGISTRY["cafe"].config_class))
    row.addWidget(ConfigForm(TrainConfig))
    window.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
