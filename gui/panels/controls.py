"""A control for each declared run parameter, built from its declaration (``core/param.py``): a spin box,
a check box, a list or a text field, with the declaration's range, label and help, as Orange binds a
``Setting`` to a control in one line. The parameters panel lays them out in a form."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from semclust.gui._core import Declared


class RangeBox(QWidget):
    """Two spin boxes for a ``(low, high)`` pair."""

    valueChanged = Signal(object)

    def __init__(self, low: int, high: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.low, self.high = QSpinBox(), QSpinBox()
        for box in (self.low, self.high):
            box.setRange(low, high)
            box.valueChanged.connect(lambda *_: self.valueChanged.emit(self.value()))
            row.addWidget(box, 1)

    def value(self) -> tuple[int, int]:
        return self.low.value(), self.high.value()

    def setValue(self, value: tuple[int, int]) -> None:  # noqa: N802 (Qt's spelling)
        self.low.setValue(value[0])
        self.high.setValue(value[1])


class _TypesSpecial:
    """A spin box in which the special value's text (``auto``) can be typed, not only reached by
    stepping down to the lowest number."""

    def _special(self, text: str) -> QValidator.State | None:
        special, typed = self.specialValueText().lower(), text.strip().lower()
        if not special or not typed or typed[0].isdigit() or not special.startswith(typed):
            return None
        return QValidator.State.Acceptable if typed == special else QValidator.State.Intermediate

    def validate(self, text: str, pos: int):
        state = self._special(text)
        return (state, text, pos) if state is not None else super().validate(text, pos)

    def valueFromText(self, text: str):  # noqa: N802 (Qt's spelling)
        if self._special(text) == QValidator.State.Acceptable:
            return self.minimum()
        return super().valueFromText(text)

    def fixup(self, text: str) -> str:
        """A partly typed special text ("au") completes to it."""
        return self.specialValueText() if self._special(text) is not None else super().fixup(text)


class SpinBox(_TypesSpecial, QSpinBox):
    pass


class DoubleSpinBox(_TypesSpecial, QDoubleSpinBox):
    pass


#: Combo boxes show this many characters at least; their lists show the whole titles.
COMBO_CHARS = 11


class Control:
    """One declared parameter's control, and how to read and set its value.

    Attributes:
        declared: the parameter's declaration.
        widget: the control itself: QSpinBox, QDoubleSpinBox, QCheckBox, QComboBox, QLineEdit or
            :class:`RangeBox`.
        row: what the form shows: the control, beside a "…" button when it names a file.
        changed: the control's signal that its value changed.
    """

    def __init__(self, declared: Declared) -> None:
        self.declared = d = declared
        p = d.param
        self.row: QWidget | QHBoxLayout
        if d.kind in ("int", "float"):
            box = SpinBox() if d.kind == "int" else DoubleSpinBox()
            low, high = p.range or (0, 2**31 - 1)
            box.setRange(low, high)
            box.setSingleStep(p.step)
            if p.special is not None:
                box.setSpecialValueText(p.special[0])
            self.widget, self.changed = box, box.valueChanged
        elif d.kind == "bool":
            self.widget = QCheckBox(p.label)
            self.changed = self.widget.toggled
        elif d.kind == "choice":
            self.widget = QComboBox()
            for choice in p.choices:
                self.widget.addItem((p.titles or {}).get(choice, choice), choice)
            self.widget.setEditable(p.free)
            # Long titles would set the side panel's width: the box shows their start, its list all.
            self.widget.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            self.widget.setMinimumContentsLength(COMBO_CHARS)
            self.changed = self.widget.currentIndexChanged
        elif d.kind == "range":
            self.widget = RangeBox(*(p.range or (0, 2**31 - 1)))
            self.changed = self.widget.valueChanged
        else:
            self.widget = QLineEdit()
            self.widget.setPlaceholderText(p.placeholder)
            self.changed = self.widget.textChanged
        self.widget.setToolTip(p.tip or p.help)
        self.button: QPushButton | None = None
        self.row = self.widget if p.browse is None else self._with_browse_button()
        self.set_value(d.shown)

    def set_enabled(self, enabled: bool) -> None:
        """Enables the control (and its "…" button)."""
        self.widget.setEnabled(enabled)
        if self.button is not None:
            self.button.setEnabled(enabled)

    def value(self) -> Any:
        """The value the control shows, in the words of the choices (``None``: the default)."""
        w, special = self.widget, self.declared.param.special
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentText().strip() if w.isEditable() else w.currentData()
        if isinstance(w, QLineEdit):
            return w.text().strip() or None
        if special is not None and w.value() == w.minimum():
            return special[1]
        return w.value()

    def set_value(self, value: Any) -> None:
        """Shows ``value``; ``None`` leaves the control as it is unless it can show "the default"."""
        w, special = self.widget, self.declared.param.special
        if isinstance(w, QLineEdit):
            w.setText("" if value is None else str(value))
        elif special is not None and value == special[1]:
            w.setValue(w.minimum())
        elif value is None:
            return
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox) and w.isEditable():
            w.setCurrentText(str(value))
        elif isinstance(w, QComboBox):
            w.setCurrentIndex(max(0, w.findData(value)))
        else:
            w.setValue(value)

    def _with_browse_button(self) -> QHBoxLayout:
        """The text field and a small "…" button choosing a file."""
        row = QHBoxLayout()
        self.button = QPushButton("…")
        self.button.setFixedWidth(28)
        self.button.setToolTip(f"Choose the {self.declared.param.label.lower()} file.")
        self.button.clicked.connect(self._browse)
        row.addWidget(self.widget, 1)
        row.addWidget(self.button)
        return row

    def _browse(self) -> None:
        p = self.declared.param
        path, _ = QFileDialog.getOpenFileName(self.widget, p.label, "", p.browse)
        if path:
            self.widget.setText(path)
