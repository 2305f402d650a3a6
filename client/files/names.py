"""Safe local names for files a peer offers us.

A file name in an offer is hostile input: it may carry directory parts (``../x``, ``/etc/passwd``,
``C:\\Windows\\x``), names Windows reserves for devices (``CON.txt``, ``com1``), control
characters, trailing dots or spaces (which Windows silently drops, so ``a.exe.`` would become
``a.exe``), or be long enough to break the file system. ``sanitize_name`` turns any string into
one plain file name that is valid on Windows and Linux; ``unique_path`` never overwrites.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

MAX_NAME_CHARS = 180
MAX_NAME_BYTES = 200          # UTF-8; leaves room for " (999)" and ".part.json" under 255
FALLBACK_NAME = "file"

# Device names Windows reserves with any extension (also the superscript-digit COM/LPT forms).
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"}
)
# Characters Windows forbids in names; ':' would also open an NTFS alternate data stream.
_FORBIDDEN = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')


def _is_unsafe_char(ch: str) -> bool:
    # Control and format characters (e.g. U+202E right-to-left override, which disguises
    # "exe.txt" endings) and unassigned/surrogate code points have no place in a file name.
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")


def _cap(name: str) -> str:
    """Shorten ``name`` to the caps, keeping a short extension."""
    def fits(s: str) -> bool:
        return len(s) <= MAX_NAME_CHARS and len(s.encode("utf-8")) <= MAX_NAME_BYTES

    if fits(name):
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 16 or not stem:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    while stem and not fits(stem + suffix):
        stem = stem[:-1]
    return (stem + suffix) if stem else FALLBACK_NAME


def sanitize_name(raw: str) -> str:
    """A plain file name (no directory part) that is safe to create in the downloads folder."""
    name = unicodedata.normalize("NFC", raw)
    # Only the last component of either separator counts: "../x", "C:\\Windows\\x" -> "x".
    name = re.split(r"[\\/]", name)[-1]
    name = _FORBIDDEN.sub("_", name)
    name = "".join("_" if _is_unsafe_char(ch) else ch for ch in name)
    # Leading dots would hide the file or spell "." / ".."; trailing dots and spaces vanish
    # on Windows, so "x.exe." must not be kept as something that turns into "x.exe".
    name = name.strip(" ").lstrip(".").rstrip(". ")
    if not name:
        return FALLBACK_NAME
    name = _cap(name).rstrip(". ")
    stem = name.split(".", 1)[0].rstrip(" ")
    if stem.upper() in _RESERVED:
        name = "_" + name
    return name or FALLBACK_NAME


def split_name(name: str) -> tuple[str, str]:
    """("archive.tar", ".gz") for "archive.tar.gz": the numbering goes before the last suffix."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + ext


def candidate_names(name: str, limit: int = 10_000):
    """``name``, ``name (1)``, ``name (2)`` ... with the number before the extension."""
    stem, ext = split_name(name)
    yield name
    for n in range(1, limit):
        yield f"{stem} ({n}){ext}"


def unique_path(folder: Path, name: str, *, taken: set[Path] | frozenset[Path] = frozenset(),
                extra_suffixes: tuple[str, ...] = ()) -> Path:
    """The first ``folder/candidate`` that does not exist (nor ``candidate+suffix`` for each
    of ``extra_suffixes``) and is not in ``taken``. Raises FileExistsError when all are used."""
    for cand in candidate_names(name):
        path = folder / cand
        if path in taken or path.exists():
            continue
        if any((folder / (cand + sfx)).exists() for sfx in extra_suffixes):
            continue
        return path
    raise FileExistsError(f"no free name for {name!r} in {folder}")


def reserve_unique(folder: Path, name: str) -> Path:
    """Create an empty file with a fresh name (exclusive create, so two threads or processes
    never pick the same one) and return its path; the caller replaces it with the real file."""
    for cand in candidate_names(name):
        path = folder / cand
        try:
            with open(path, "xb"):
                return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free name for {name!r} in {folder}")
