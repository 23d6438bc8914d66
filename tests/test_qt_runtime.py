"""The Qt binding in use survives what the window does all day: many signal deliveries.

PySide6 6.12.0 drops a reference to None/True/False on every signal emitted to a Python slot,
which crashes the interpreter after some tens of thousands of signals (a few minutes of
streaming). pyproject.toml keeps PySide6 below 6.12; this test fails on a binding with the bug.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from PySide6.QtCore import QCoreApplication, QObject, Signal
app = QCoreApplication([])
class Source(QObject):
    value = Signal(object)
    bare = Signal()
source, got = Source(), []
source.value.connect(lambda x: got.append(x is None))
source.bare.connect(lambda: got.append(1))
got.append(True); got.clear()
counts = [sys.getrefcount(v) for v in (None, True, False)]
for _ in range(60_000):
    source.value.emit(None)
    source.bare.emit()
n = len(got); got.clear()
after = [sys.getrefcount(v) for v in (None, True, False)]
print([b - a for a, b in zip(counts, after)], n)
"""


def test_signals_do_not_corrupt_reference_counts() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    drift, delivered = eval(result.stdout.strip().rsplit(" ", 1)[0]), \
        int(result.stdout.strip().rsplit(" ", 1)[1])
    assert delivered == 120_000
    assert all(abs(d) < 100 for d in drift), drift
