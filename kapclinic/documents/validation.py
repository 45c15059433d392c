"""What a chart document may be: checked from its bytes, never from its name or the browser's type.

Accepted: PDF, PNG and JPEG (what every PDF viewer and browser opens, and what phones and scanners
produce). HEIC and TIFF are refused with the way to convert: no library installed here can decode HEIC
to prove a file is one, and TIFF opens in few viewers (docs/architecture.md, "Chart documents").

A file is accepted only when
- its name is a plain file name (no folder, no control characters) ending in .pdf, .png, .jpg or .jpeg;
- its first bytes say it is a PDF, PNG or JPEG (the `filetype` signatures) and that type matches the
  name's ending, so a ZIP archive (a "ZIP bomb"), an SVG, HTML or a program renamed to .pdf is refused
  without ever being unpacked or rendered;
- it opens as that type: a PDF parses and has at least one page, an image decodes its header and is not
  larger than MAX_PIXELS (a small file that decompresses to a huge bitmap is refused);
- it is not empty and not over the size limit (settings.DOCUMENT_MAX_MB).

Every refusal is a sentence a person can act on.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from typing import IO

import filetype

from kapclinic.core.errors import DomainError

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
EXTENSIONS: dict[str, str] = {".pdf": PDF, ".png": PNG, ".jpg": JPEG, ".jpeg": JPEG}
TYPE_NAMES: dict[str, str] = {PDF: "PDF", PNG: "PNG image", JPEG: "JPEG image"}
STORED_EXTENSION: dict[str, str] = {PDF: ".pdf", PNG: ".png", JPEG: ".jpg"}
#: Largest image accepted, in pixels (a 600 dpi scan of a US Letter page is about 34 million).
MAX_PIXELS = 80_000_000
ALL_TYPES: frozenset[str] = frozenset({PDF, PNG, JPEG})
IMAGES: frozenset[str] = frozenset({PNG, JPEG})
MAX_NAME = 120
ALLOWED_SENTENCE = "Upload a PDF, PNG or JPEG file."


@dataclass(frozen=True)
class Checked:
    name: str  # the plain file name shown to people (never used as a storage path)
    content_type: str
    size: int


def check_name(raw: str) -> str:
    """The file name as given, if it is a plain name; else refuse."""
    name = (raw or "").strip()
    if not name:
        raise DomainError("The file has no name. " + ALLOWED_SENTENCE)
    if "/" in name or "\\" in name or name in {".", ".."} or name.startswith(".."):
        raise DomainError(
            "The file name contains a folder path; upload the file itself, named like report.pdf."
        )
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise DomainError("The file name contains control characters; rename the file and upload it again.")
    if len(name) > MAX_NAME:
        raise DomainError(
            f"The file name is longer than {MAX_NAME} characters; rename the file and upload it again."
        )
    return name


def _extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _type_list(allowed: frozenset[str]) -> str:
    """The accepted types in words ("PDF, PNG or JPEG")."""
    names = [TYPE_NAMES[t].removesuffix(" image") for t in (PDF, PNG, JPEG) if t in allowed]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def check(
    fh: IO[bytes], raw_name: str, size: int, *, max_bytes: int, allowed: frozenset[str] = ALL_TYPES
) -> Checked:
    """Check an uploaded file (an open binary file, read from the start). Raises DomainError.
    `allowed` narrows the accepted types (a logo: IMAGES); every other check is the same."""
    name = check_name(raw_name)
    allowed_sentence = f"Upload a {_type_list(allowed)} file."
    if size <= 0:
        raise DomainError("The file is empty.")
    if size > max_bytes:
        raise DomainError(
            f"The file is {_mb(size)}; the largest file accepted is {_mb(max_bytes)}. "
            "Scan at a lower resolution or split it into parts."
        )
    ext = _extension(name)
    if ext in {".heic", ".heif"}:
        raise DomainError(
            "HEIC photos are not accepted: export the photo as JPEG (on an iPhone: Settings, Camera, "
            "Formats, Most Compatible) and upload that."
        )
    if ext in {".tif", ".tiff"}:
        raise DomainError("TIFF files are not accepted: save the scan as PDF and upload that.")
    if ext not in EXTENSIONS or EXTENSIONS[ext] not in allowed:
        raise DomainError(f"“{name}” is not a {_type_list(allowed)} file. {allowed_sentence}")
    fh.seek(0)
    head = fh.read(8192)
    kind = filetype.guess(head)
    actual = kind.mime if kind is not None else None
    claimed = EXTENSIONS[ext]
    if actual not in TYPE_NAMES:
        what = _describe(actual, head)
        raise DomainError(
            f"“{name}” is named like a {TYPE_NAMES[claimed]} but its content is {what}. {allowed_sentence}"
        )
    if actual != claimed:
        raise DomainError(
            f"“{name}” is named like a {TYPE_NAMES[claimed]} but its content is a {TYPE_NAMES[actual]}; "
            "rename it with the right ending and upload it again."
        )
    fh.seek(0)
    if actual == PDF:
        _check_pdf(fh, name)
    else:
        _check_image(fh, name, actual)
    fh.seek(0)
    return Checked(name=name, content_type=actual, size=size)


def _describe(mime: str | None, head: bytes) -> str:
    if mime in {
        "application/zip",
        "application/gzip",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-tar",
    }:
        return "a compressed archive"
    text = head.lstrip()[:200].lower()
    if b"<svg" in text or b"<?xml" in text:
        return "an SVG or XML drawing"
    if b"<html" in text or b"<!doctype" in text or b"<script" in text:
        return "a web page"
    if mime:
        return f"of another type ({mime})"
    return "of a type that is not accepted"


def _check_pdf(fh: IO[bytes], name: str) -> None:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(fh, strict=False)
        if reader.is_encrypted:
            raise DomainError(
                f"“{name}” is a password-protected PDF; save a copy without the password and upload that."
            )
        pages = len(reader.pages)
    except DomainError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError, OSError):
        raise DomainError(
            f"“{name}” starts like a PDF but cannot be opened as one; it may be damaged."
        ) from None
    if pages < 1:
        raise DomainError(f"“{name}” is a PDF without pages.")


def _check_image(fh: IO[bytes], name: str, mime: str) -> None:
    from PIL import Image

    try:
        with Image.open(fh) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise DomainError(
                    f"“{name}” is {width} × {height} pixels, larger than the "
                    f"{MAX_PIXELS // 1_000_000} million pixels accepted; "
                    "scan or photograph it at a lower resolution."
                )
            img.verify()
    except DomainError:
        raise
    except Exception:  # Pillow raises many types (incl. DecompressionBombError) for bad input
        raise DomainError(
            f"“{name}” starts like a {TYPE_NAMES[mime]} but cannot be opened as one; it may be damaged."
        ) from None


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


def read_all(data: bytes, name: str, *, max_bytes: int) -> Checked:
    """`check` for bytes in memory (demo data, tests)."""
    return check(io.BytesIO(data), name, len(data), max_bytes=max_bytes)
