"""The desktop window: everything that imports PySide6 lives here."""
