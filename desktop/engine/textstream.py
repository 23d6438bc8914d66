"""Turn a stream of token bytes into text pieces, honouring stop strings.

Tokens can split a UTF-8 character, and a stop string can span tokens, so text is held back
until it is certainly part of the reply.
"""

from __future__ import annotations


def _split_utf8(data: bytes) -> tuple[str, bytes]:
    """Decode the complete characters of *data*; return them and the incomplete tail."""
    try:
        return data.decode("utf-8"), b""
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and len(data) - exc.start < 4:
            return data[: exc.start].decode("utf-8", errors="replace"), data[exc.start:]
        return data.decode("utf-8", errors="replace"), b""


class TextStream:
    """Feed token bytes in; get out text that is safe to show, and whether a stop was hit."""

    def __init__(self, stops: list[str] | None = None) -> None:
        self._stops = [s for s in (stops or []) if s]
        self._bytes = b""
        self._pending = ""
        self.stopped = False

    def feed(self, piece: bytes) -> str:
        if self.stopped:
            return ""
        text, self._bytes = _split_utf8(self._bytes + piece)
        self._pending += text
        if not self._stops:
            out, self._pending = self._pending, ""
            return out
        cut = min((i for i in (self._pending.find(s) for s in self._stops) if i >= 0),
                  default=-1)
        if cut >= 0:
            out, self._pending = self._pending[:cut], ""
            self.stopped = True
            return out
        hold = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(self._pending)), hold, -1):
                if self._pending.endswith(stop[:k]):
                    hold = k
                    break
        keep = len(self._pending) - hold
        out, self._pending = self._pending[:keep], self._pending[keep:]
        return out

    def flush(self) -> str:
        """What is still held back once generation has ended without a stop."""
        if self.stopped:
            return ""
        out = self._pending + self._bytes.decode("utf-8", errors="replace")
        self._pending, self._bytes = "", b""
        return out
