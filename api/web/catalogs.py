"""Compile the .po message catalogs into .mo files when they are missing or older than their source.

`make setup` compiles them with pybabel; this covers a checkout that was not set up that way (an installed
wheel, a test run straight after editing a .po file). It uses Babel's own reader and writer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)


def ensure_compiled(translations: Path) -> None:
    for po_path in translations.glob("*/LC_MESSAGES/*.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        try:
            _compile(po_path, mo_path)
        except OSError as error:  # a read-only install: the texts fall back to English
            log.warning("cannot write %s: %s", mo_path.name, error)


def _compile(po_path: Path, mo_path: Path) -> None:
    with po_path.open("rb") as source:
        catalog = read_po(source, locale=po_path.parent.parent.name)
    temporary = mo_path.with_suffix(f".mo.{os.getpid()}.tmp")  # parallel test runs may compile at once
    with temporary.open("wb") as target:
        write_mo(target, catalog)
    temporary.replace(mo_path)
