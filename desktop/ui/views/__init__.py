"""Widgets and pages of the main window."""
