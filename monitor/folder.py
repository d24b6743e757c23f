"""Folder sources: a folder of ``.txt``, ``.md`` and ``.json`` documents, checked for new files.

A document is identified by its path within the folder, so it is read once. A file modified in
the last few seconds may still be being written and waits for the next check (copy files in,
or better write them elsewhere and move them in).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from monitor.errors import FetchError
from monitor.identity import document_key
from monitor.models import Article
from monitor.parse import DOCUMENT_SUFFIXES, read_document

SETTLE_SECONDS = 2.0  # a file younger than this may be half-written


def list_documents(folder: Path, *, now: float | None = None) -> dict[str, Path]:
    """The folder's settled documents, by identity key, in path order."""
    if not folder.is_dir():
        raise FetchError(f"folder {folder} does not exist")
    now = time.time() if now is None else now
    try:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES)
        return {
            document_key(p.relative_to(folder).as_posix()): p
            for p in files
            if p.is_file() and now - p.stat().st_mtime >= SETTLE_SECONDS
        }
    except OSError as exc:
        raise FetchError(f"cannot list folder {folder}: {exc.strerror or exc}") from exc


def settling(folder: Path, *, now: float | None = None) -> float | None:
    """Seconds until the youngest document still being written has settled; None if none is."""
    now = time.time() if now is None else now
    try:
        ages = [
            now - p.stat().st_mtime
            for p in folder.rglob("*")
            if p.suffix.lower() in DOCUMENT_SUFFIXES and p.is_file()
        ]
    except OSError:
        return None  # the next check says what is wrong
    young = [SETTLE_SECONDS - age for age in ages if age < SETTLE_SECONDS]
    return max(0.0, max(young)) if young else None


def read_folder_document(path: Path, source: str) -> Article:
    """One document; it links to its file and, without a date of its own, takes the file's."""
    article = read_document(path, source=source)
    published = article.published or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return replace(article, url=article.url or path.resolve().as_uri(), published=published)
