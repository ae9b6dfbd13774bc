"""Puts a PanelView on the panel's widgets.

Only Qt setter methods that PythonQt (Slicer) and PySide6 (the tests, the screenshot) both offer
are called, and nothing is read back from a widget, so the same code draws the panel in Slicer and
off-screen. Combo boxes are refilled only when their items change (with their signals blocked), so
that an open list is not closed under the user's pointer.
"""

from __future__ import annotations

from typing import Any, Dict

from MSTKDSegmentLib.panel import ERROR, WARNING, Choice, PanelView

LEVEL_STYLES = {WARNING: "color: #b35900;", ERROR: "color: #c00000;"}


class PanelRenderer:
    """Draws views on the widgets of `ui` (named as in MSTKDSegment.ui)."""

    def __init__(self, ui: Any) -> None:
        self.ui = ui
        self._choices: Dict[str, Choice] = {}

    def render(self, view: PanelView) -> None:
        """Show `view`."""
        ui = self.ui
        self._choice("referenceComboBox", view.reference)
        self._choice("modelComboBox", view.model)
        self._choice("deviceComboBox", view.device)
        self._choice("brainExtractionComboBox", view.brain_extraction)
        self._choice("mirroringComboBox", view.mirroring)
        ui.modelDescriptionLabel.setText(view.model_description)
        ui.modelPathLabel.setVisible(view.model_file_visible)
        ui.modelPathLineEdit.setVisible(view.model_file_visible)
        ui.deviceStatusLabel.setText(view.device_text)
        ui.deviceStatusLabel.setVisible(bool(view.device_text))
        ui.deviceStatusLabel.setStyleSheet(LEVEL_STYLES.get(view.device_level, ""))
        ui.inputsWarningLabel.setText(view.inputs_warning)
        ui.inputsWarningLabel.setVisible(bool(view.inputs_warning))
        ui.applyButton.setText(view.apply_text)
        ui.applyButton.setEnabled(view.apply_enabled)
        ui.applyButton.setToolTip(view.apply_tooltip)
        ui.progressBar.setVisible(view.progress_visible)
        ui.progressBar.setValue(view.progress)
        ui.statusLabel.setText(view.status)
        ui.resultLabel.setText(view.result)
        ui.notesLabel.setText(view.notes)
        ui.notesLabel.setVisible(bool(view.notes))

    def _choice(self, name: str, choice: Choice) -> None:
        combo = getattr(self.ui, name)
        previous = self._choices.get(name)
        if previous == choice:
            return
        blocked = combo.blockSignals(True)
        try:
            if previous is None or previous.items != choice.items:
                combo.clear()
                for text, data in choice.items:
                    combo.addItem(text, data)
            combo.setCurrentIndex(choice.current)
        finally:
            combo.blockSignals(blocked)
        self._choices[name] = choice
