"""Error text that may leave the client: no local paths, no sizes, one short line.

An exception raised in the ClientApp becomes an error reply whose reason
Flower sends to the server verbatim. Raw, that text names the client's folders
(``/data/hospital-a/xray/train/...``), its user name (inside a home folder),
file sizes and whatever else the failing library printed. :func:`scrub` keeps
the words and removes those; the full text stays in the client's own log.
"""

from __future__ import annotations

import re

#: longest error text sent to the server
MAX_CHARS = 300
PATH_MARK = "<path>"
SIZE_MARK = "<size>"

#: URLs with a local scheme, Windows drive paths, UNC paths, POSIX and home paths,
#: and relative paths with at least one separator (``data/x.npz``)
_PATH = re.compile(
    r"""(?:file://[^\s'"<>]*)"""
    r"""|(?:\b[A-Za-z]:[\\/][^\s'"<>]*)"""
    r"""|(?:\\\\[^\s'"<>]+)"""
    r"""|(?:(?<![\w<])~?/[^\s'"<>]*)"""
    r"""|(?:\b[\w.+-]+(?:[\\/][\w.+-]+)+[\\/]?)"""
)
_SIZE = re.compile(r"\b\d[\d,_]*(?:\.\d+)?\s*(?:bytes?|[KMGT]i?B)\b", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def scrub(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` without paths or sizes, on one line, at most ``limit`` characters."""
    out = _PATH.sub(PATH_MARK, text)
    out = _SIZE.sub(SIZE_MARK, out)
    out = _SPACE.sub(" ", out).strip()
    if len(out) > limit:
        out = out[: limit - 3].rstrip() + "..."
    return out


def describe(exc: BaseException) -> str:
    """``<ExceptionClass>: <scrubbed message>`` for an error reply."""
    message = scrub(str(exc))
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


class ClientError(RuntimeError):
    """An error whose own class could not carry the scrubbed text."""


def scrubbed(exc: BaseException) -> Exception:
    """``exc`` again, its text scrubbed: the same class where it takes one string.

    Raise it ``from None`` (the chained original would be sent too); log the
    original locally first.
    """
    text = scrub(str(exc))
    try:
        again = type(exc)(text)
    except Exception:  # a class with another constructor
        again = None
    if isinstance(again, Exception) and str(again) == text:
        return again
    return ClientError(describe(exc))
