"""The palette and the style sheet made from the tokens, on Qt's Fusion style.

The palette colours what Fusion draws itself (check boxes, sliders, progress, selections,
the text of every widget); the style sheet gives the common widgets their shape: rounded
buttons and fields, a focus ring of the accent's colour for the keyboard, flat scroll bars,
tabs with an underline, and the few named parts of the window (``objectName`` selectors).

Rules name widget classes or object names, never ``QWidget`` or ``QTextEdit`` as a whole: the
chat's paragraphs are QTextBrowsers that paint on their own (see views/markdown.py), and a
rule that reached them would make every repaint of a streaming reply dearer.

For views: a button that is the one main action of its place gets ``setProperty("primary",
True)`` (accent fill); a button or label whose text should be secondary gets
``setProperty("muted", True)``. Set the property before the widget is first shown, or call
``widget.style().polish(widget)`` after changing it. A quiet text button beside a bigger one
(Pause, Cancel) is ``subtle``; a filter shaped as a pill (a check button, combo box or search
field) is a ``chip``; a small rounded label named ``badge`` takes the colours of its ``tone``
(``success``, ``warning``, ``error``, ``accent``, ``outline``; grey without one): see
views/card_parts.py.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

from desktop.ui.style.icons import svg_file
from desktop.ui.style.tokens import (FOCUS_WIDTH, RADIUS_L, RADIUS_M, RADIUS_S, RADIUS_XL,
                                     Tokens)


def _url(name: str, colour: str) -> str:
    return "url(" + svg_file(name, colour).as_posix() + ")"


def _soft(colour: str, t: Tokens) -> str:
    """*colour* thinned over the theme's cards: a badge's background that its text reads on."""
    c = QColor(colour)
    return f"rgba({c.red()}, {c.green()}, {c.blue()}, {0.28 if t.dark else 0.12})"


def make_palette(t: Tokens) -> QPalette:
    """The application palette for the theme *t*."""
    palette = QPalette(QColor(t.raised), QColor(t.window))  # Fusion's shades from these two
    role = QPalette.ColorRole
    for name, colour in ((role.Window, t.window), (role.WindowText, t.text),
                         (role.Base, t.base), (role.AlternateBase, t.alternate),
                         (role.Text, t.text), (role.BrightText, t.on_accent),
                         (role.Button, t.raised), (role.ButtonText, t.text),
                         (role.Highlight, t.accent), (role.HighlightedText, t.on_accent),
                         (role.Link, t.accent_hover if t.dark else t.accent),
                         (role.LinkVisited, "#c58af9" if t.dark else "#8250df"),
                         (role.ToolTipBase, t.raised), (role.ToolTipText, t.text),
                         (role.PlaceholderText, t.text_faint),
                         (role.Light, t.raised), (role.Midlight, t.hover),
                         (role.Mid, t.border_strong), (role.Dark, t.border_strong),
                         (role.Shadow, "#000000"), (role.Accent, t.accent)):
        palette.setColor(name, QColor(colour))
    # Disabled controls are dimmed, or they look like ones to press.
    disabled = QPalette.ColorGroup.Disabled
    for name in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(disabled, name, QColor(t.text_faint))
    palette.setColor(disabled, role.Button, QColor(t.window))
    palette.setColor(disabled, role.Base, QColor(t.window))
    palette.setColor(disabled, role.Highlight, QColor(t.border_strong))
    return palette


def style_sheet(t: Tokens) -> str:
    """The application style sheet for the theme *t*."""
    ring = FOCUS_WIDTH
    down, up = _url("chevron-down", t.text_muted), _url("chevron-up", t.text_muted)
    down_faint, up_faint = _url("chevron-down", t.text_faint), _url("chevron-up", t.text_faint)
    check, minus = _url("check", t.on_accent), _url("minus", t.on_accent)
    return f"""
QToolTip {{ background: {t.raised}; color: {t.text}; border: 1px solid {t.border};
    padding: 4px 6px; }}

QPushButton {{ background: {t.raised}; color: {t.text}; border: 1px solid {t.border};
    border-radius: {RADIUS_M}px; padding: 4px 8px; }}
QPushButton:hover {{ background: {t.hover}; border-color: {t.border_strong}; }}
QPushButton:pressed {{ background: {t.pressed}; }}
QPushButton:checked {{ background: {t.accent_soft}; border-color: {t.accent}; }}
QPushButton:disabled {{ background: {t.window}; color: {t.text_faint}; border-color: {t.border}; }}
QPushButton[primary="true"] {{ background: {t.accent}; color: {t.on_accent};
    border-color: {t.accent}; }}
QPushButton[primary="true"]:hover {{ background: {t.accent_hover}; }}
QPushButton[primary="true"]:disabled {{ background: {t.window}; color: {t.text_faint};
    border-color: {t.border}; }}
QPushButton:focus {{ border: {ring}px solid {t.focus}; padding: 3px 7px; }}

QToolButton {{ background: {t.raised}; color: {t.text}; border: 1px solid {t.border};
    border-radius: {RADIUS_M}px; padding: 3px 6px; }}
QToolButton[autoRaise="true"] {{ background: transparent; border-color: transparent; }}
QToolButton:hover {{ background: {t.hover}; }}
QToolButton:pressed, QToolButton:checked {{ background: {t.pressed}; }}
QToolButton:disabled {{ color: {t.text_faint}; }}
QToolButton:focus {{ border: {ring}px solid {t.focus}; padding: 2px 5px; }}
QToolButton[popupMode="2"] {{ padding-right: 18px; }}
QToolButton[popupMode="2"]:focus {{ padding-right: 17px; }}
QToolButton::menu-indicator, QPushButton::menu-indicator {{ image: {down}; width: 12px;
    height: 12px; subcontrol-origin: padding; subcontrol-position: center right; right: 3px; }}
QPushButton::menu-indicator {{ right: 2px; }}

QLineEdit, QPlainTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {{ background: {t.base};
    color: {t.text}; border: 1px solid {t.border}; border-radius: {RADIUS_M}px;
    padding: 3px 6px; selection-background-color: {t.accent};
    selection-color: {t.on_accent}; }}
QLineEdit:hover, QPlainTextEdit:hover, QSpinBox:hover, QDoubleSpinBox:hover,
QComboBox:hover {{ border-color: {t.border_strong}; }}
QLineEdit:focus, QPlainTextEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus,
QComboBox:focus {{ border: {ring}px solid {t.focus}; padding: 2px 5px; }}
QLineEdit:disabled, QPlainTextEdit:disabled, QSpinBox:disabled, QDoubleSpinBox:disabled,
QComboBox:disabled {{ background: {t.window}; color: {t.text_faint}; }}
QComboBox {{ padding-right: 18px; }}
QComboBox:focus {{ padding-right: 17px; }}
QComboBox::drop-down {{ subcontrol-origin: padding; subcontrol-position: center right;
    width: 16px; border: none; }}
QComboBox::down-arrow {{ image: {down}; width: 12px; height: 12px; }}
QComboBox::down-arrow:disabled {{ image: {down_faint}; }}
QComboBox QAbstractItemView {{ background: {t.raised}; border: 1px solid {t.border};
    selection-background-color: {t.accent_soft}; selection-color: {t.text}; outline: 0; }}
QSpinBox, QDoubleSpinBox {{ padding: 3px 4px; }}
QSpinBox:focus, QDoubleSpinBox:focus {{ padding: 2px 3px; }}
QSpinBox::up-button, QDoubleSpinBox::up-button, QSpinBox::down-button,
QDoubleSpinBox::down-button {{ subcontrol-origin: border; width: 16px; border: none;
    background: transparent; }}
QSpinBox::up-button, QDoubleSpinBox::up-button {{ subcontrol-position: top right; }}
QSpinBox::down-button, QDoubleSpinBox::down-button {{ subcontrol-position: bottom right; }}
QSpinBox::up-button:hover, QDoubleSpinBox::up-button:hover, QSpinBox::down-button:hover,
QDoubleSpinBox::down-button:hover {{ background: {t.hover}; }}
QSpinBox::up-arrow, QDoubleSpinBox::up-arrow {{ image: {up}; width: 12px; height: 12px; }}
QSpinBox::down-arrow, QDoubleSpinBox::down-arrow {{ image: {down}; width: 12px;
    height: 12px; }}
QSpinBox::up-arrow:disabled, QSpinBox::up-arrow:off, QDoubleSpinBox::up-arrow:disabled,
QDoubleSpinBox::up-arrow:off {{ image: {up_faint}; }}
QSpinBox::down-arrow:disabled, QSpinBox::down-arrow:off, QDoubleSpinBox::down-arrow:disabled,
QDoubleSpinBox::down-arrow:off {{ image: {down_faint}; }}

QCheckBox {{ spacing: 6px; }}
QCheckBox::indicator {{ width: 14px; height: 14px; margin: 1px; background: {t.base};
    border: 1px solid {t.border_strong}; border-radius: {RADIUS_S}px; }}
QCheckBox::indicator:hover {{ border-color: {t.accent}; }}
QCheckBox::indicator:checked {{ background: {t.accent}; border-color: {t.accent};
    image: {check}; }}
QCheckBox::indicator:indeterminate {{ background: {t.accent}; border-color: {t.accent};
    image: {minus}; }}
QCheckBox::indicator:disabled {{ background: {t.window}; border-color: {t.border}; }}
QCheckBox::indicator:checked:disabled {{ background: {t.border_strong}; }}
QCheckBox::indicator:focus {{ margin: 0; border: {ring}px solid {t.focus}; }}

QListView, QTreeView, QTableView {{ background: {t.base}; border: 1px solid {t.border};
    border-radius: {RADIUS_M}px; alternate-background-color: {t.alternate};
    selection-background-color: {t.accent_soft}; selection-color: {t.text}; outline: 0; }}
QListView:focus, QTreeView:focus, QTableView:focus {{ border-color: {t.focus}; }}
QHeaderView::section {{ background: {t.surface}; color: {t.text_muted}; border: none;
    border-bottom: 1px solid {t.border}; border-right: 1px solid {t.border};
    padding: 4px 8px; }}
QHeaderView::section:last {{ border-right: none; }}
QTableCornerButton::section {{ background: {t.surface}; border: none; }}

QTabWidget::pane {{ border: none; border-top: 1px solid {t.border}; top: -1px; }}
QTabBar::tab {{ background: transparent; color: {t.text_muted}; border: none;
    border-bottom: 2px solid transparent; padding: 6px 12px; margin-right: 4px; }}
QTabBar::tab:hover {{ color: {t.text}; border-bottom-color: {t.border_strong}; }}
QTabBar::tab:selected {{ color: {t.text}; border-bottom-color: {t.accent}; }}
QTabBar:focus {{ outline: none; }}

QGroupBox {{ border: 1px solid {t.border}; border-radius: {RADIUS_L}px; margin-top: 1.5em;
    padding: 6px 8px 8px 8px; }}
QGroupBox::title {{ subcontrol-origin: margin; subcontrol-position: top left; left: 6px;
    padding: 0 4px; color: {t.text_muted}; }}

QProgressBar {{ background: {t.hover}; color: {t.text}; border: none;
    border-radius: {RADIUS_S}px; text-align: center; }}
QProgressBar::chunk {{ background: {t.accent}; border-radius: {RADIUS_S}px; }}

QMenu {{ background: {t.raised}; color: {t.text}; border: 1px solid {t.border};
    padding: 4px; }}
QMenu::item {{ padding: 5px 20px 5px 12px; border-radius: {RADIUS_S}px; }}
QMenu::item:selected {{ background: {t.accent_soft}; }}
QMenu::item:disabled {{ color: {t.text_faint}; }}
QMenu::separator {{ height: 1px; background: {t.border}; margin: 4px 8px; }}

/* Flat scroll bars: cheap to paint (the chat's moves with every line of a streaming reply,
   where Fusion's gradients would cost more than the text). */
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 0; }}
QScrollBar:horizontal {{ background: transparent; height: 10px; margin: 0; }}
QScrollBar::handle {{ background: {t.border_strong}; border-radius: 3px; margin: 2px; }}
QScrollBar::handle:hover {{ background: {t.text_faint}; }}
QScrollBar::handle:vertical {{ min-height: 32px; }}
QScrollBar::handle:horizontal {{ min-width: 32px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: none; }}
QScrollArea {{ border: none; }}

QStatusBar {{ background: {t.surface}; color: {t.text_muted};
    border-top: 1px solid {t.border}; }}
QStatusBar::item {{ border: none; }}
QStatusBar QLabel {{ color: {t.text_muted}; padding: 0 6px; }}
QSplitter::handle {{ background: transparent; }}
QMainWindow::separator {{ background: {t.border}; width: 1px; height: 1px; }}
QDockWidget {{ color: {t.text_muted}; }}
QDockWidget::title {{ background: {t.surface}; padding: 6px 8px; text-align: left; }}

QListWidget#navigationRail {{ background: {t.surface}; border: none;
    border-right: 1px solid {t.border}; border-radius: 0; }}
QWidget#sidebar {{ background: {t.surface}; border-right: 1px solid {t.border}; }}
QWidget#sidebar QListView {{ background: transparent; border: none; }}
QWidget#sidebar QListView::item {{ padding: 4px 6px; border-radius: {RADIUS_M}px; }}
QWidget#sidebar QListView::item:hover {{ background: {t.hover}; }}
QWidget#sidebar QListView::item:selected {{ background: {t.accent_soft}; color: {t.text}; }}

/* The Models page: the catalog's cards, their badges, the filter bar's chips. */
QFrame#modelCard {{ background: {t.raised}; border: 1px solid {t.border};
    border-radius: {RADIUS_L}px; }}
QFrame#modelCard:hover {{ border-color: {t.border_strong}; }}
QLabel#badge {{ border-radius: {RADIUS_S}px; padding: 1px 6px; color: {t.text_muted};
    background: {t.hover}; }}
QLabel#badge[tone="success"] {{ color: {t.success}; background: {_soft(t.fill_success, t)}; }}
QLabel#badge[tone="warning"] {{ color: {t.warning}; background: {_soft(t.fill_warning, t)}; }}
QLabel#badge[tone="error"] {{ color: {t.error}; background: {_soft(t.fill_error, t)}; }}
QLabel#badge[tone="accent"] {{ color: {t.accent_hover if t.dark else t.accent};
    background: {t.accent_soft}; }}
QLabel#badge[tone="outline"] {{ background: transparent; border: 1px solid {t.border};
    padding: 0 5px; }}
QPushButton[chip="true"] {{ border-radius: 12px; padding: 3px 10px; }}
QPushButton[chip="true"]:checked {{ background: {t.accent_soft}; border-color: {t.accent}; }}
QPushButton[chip="true"]:focus {{ padding: 2px 9px; }}
QComboBox[chip="true"], QLineEdit[chip="true"] {{ border-radius: 12px; padding-left: 10px; }}
QComboBox[chip="true"]:focus, QLineEdit[chip="true"]:focus {{ padding-left: 9px; }}
QLineEdit[chip="true"] {{ padding-left: 4px; }}
QLineEdit[chip="true"]:focus {{ padding-left: 3px; }}
QPushButton[subtle="true"] {{ background: transparent; border-color: transparent;
    color: {t.text_muted}; }}
QPushButton[subtle="true"]:hover {{ background: {t.hover}; color: {t.text}; }}
QPushButton[subtle="true"]:focus {{ border-color: {t.focus}; }}
QLabel#emptyTitle {{ color: {t.text}; }}

*[muted="true"] {{ color: {t.text_muted}; }}

/* The chat: a header of controls, messages in a column, and the message box. */
QFrame#chatHeader {{ background: {t.window}; border: none;
    border-bottom: 1px solid {t.border}; }}
QLabel#chatAdapters {{ background: {t.accent_soft}; color: {t.text};
    border-radius: {RADIUS_M}px; padding: 3px 8px; }}
QComboBox#modelPicker {{ border-radius: {RADIUS_L}px; padding: 3px 4px 3px 10px; }}
QComboBox#modelPicker:focus {{ padding: 2px 3px 2px 9px; }}
QComboBox#modelPicker::drop-down {{ width: 22px; }}
QToolButton[chatTool="true"] {{ background: transparent; border: 1px solid transparent;
    padding: 4px; }}
QToolButton[chatTool="true"]:hover {{ background: {t.hover}; }}
QToolButton[chatTool="true"]:checked {{ background: {t.accent_soft}; }}
QToolButton[chatTool="true"]:focus {{ border: {ring}px solid {t.focus}; padding: 3px; }}
QToolButton[chatTool="true"][popupMode="2"] {{ padding-right: 4px; }}
QToolButton[chatTool="true"][popupMode="2"]:focus {{ padding-right: 3px; }}
QToolButton[chatTool="true"]::menu-indicator {{ image: none; width: 0; }}
QFrame#userMessage, QFrame#assistantMessage {{ background: transparent; border: none; }}
QFrame#userBubble {{ background: palette(alternate-base); border: none;
    border-radius: {RADIUS_XL}px; }}
QLabel#messageWho {{ color: {t.text_muted}; }}
QToolButton#messageAction {{ background: transparent; border: 1px solid transparent;
    border-radius: {RADIUS_M}px; padding: 3px; }}
QToolButton#messageAction:hover {{ background: {t.hover}; }}
QToolButton#messageAction:focus {{ border: {ring}px solid {t.focus}; padding: 2px; }}
QFrame#composerBox {{ background: {t.base}; border: 1px solid {t.border_strong};
    border-radius: {RADIUS_XL}px; }}
QFrame#composerBox[focused="true"] {{ border: {ring}px solid {t.focus}; }}
QFrame#composerBox QPlainTextEdit {{ background: transparent; border: none; padding: 0; }}
QToolButton#sendButton {{ background: {t.accent}; border: none; border-radius: 16px;
    padding: 0; }}
QToolButton#sendButton:hover {{ background: {t.accent_hover}; }}
QToolButton#sendButton:disabled {{ background: {t.border}; }}
QToolButton#sendButton:focus {{ border: {ring}px solid {t.on_accent}; }}
QLabel#tokenCount {{ color: {t.text_muted}; }}
QLabel#tokenCount[problem="true"] {{ color: {t.warning}; }}
QLabel#welcomeNote {{ color: {t.text_muted}; }}
QPushButton#welcomePrompt {{ background: {t.base}; text-align: left; padding: 10px 14px;
    border-radius: {RADIUS_L}px; }}
QPushButton#welcomePrompt:hover {{ background: {t.hover}; }}
QPushButton#welcomePrompt:focus {{ padding: 9px 13px; }}
QFrame#codeBlock {{ background: {t.surface}; border: 1px solid {t.border};
    border-radius: {RADIUS_M}px; }}
QFrame#codeBlock QPlainTextEdit {{ background: {t.base}; border: 1px solid {t.border};
    border-radius: {RADIUS_S}px; padding: 0; }}
/* The chat's scroll bar is painted whole, in the page's colour (ChatPage marks it opaque). */
QScrollArea#chatScroll QScrollBar:vertical {{ background: palette(window); }}

QFrame#engineBanner {{ background: {t.fill_warning}; color: white; }}
QFrame#engineBanner QLabel {{ color: white; }}
QLabel#chatNotice, QLabel#messageReason, QLabel[problem="true"] {{ color: {t.warning}; }}
QLabel#fieldError {{ color: {t.error}; }}
QLabel#chatTitle {{ font-weight: bold; }}
QLabel#thinkingText {{ color: {t.text_muted}; border-left: 2px solid palette(mid);
    padding-left: 8px; }}
QToolButton#thinkingHeader, QToolButton#sourcesHeader {{ color: {t.text_muted}; }}
QFrame#toolCall {{ background: {t.surface}; border: 1px solid {t.border};
    border-radius: {RADIUS_L}px; }}
"""
