"""Reading interaction logs and item tables from disk.

Supported: CSV/TSV (delimiter sniffed), Parquet, and RecBole atomic files (``.inter``
with an optional ``.item`` beside it, headers written ``name:type``). A folder may hold
``interactions.*`` + ``items.*`` (the layout of ``../shared/data``) or one ``.inter`` +
``.item`` pair. Every failure raises :class:`~engine.errors.DataError` naming the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from engine.errors import DataError

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".inter", ".item")
_SNIFF_BYTES = 64 * 1024


@dataclass
class RawData:
    """Tables as read from disk, before any column is mapped."""

    interactions: pd.DataFrame
    items: pd.DataFrame | None
    interactions_path: Path
    items_path: Path | None = None

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.interactions_path, self.items_path) if p is not None]


def load_raw(
    path: str | Path,
    items_path: str | Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> RawData:
    """Read a dataset from a file or folder, pairing an item table when one is found.

    ``progress(fraction, text)`` is told as the bytes of each table are read (text
    tables every 256 KiB or so, Parquet once), the tables weighted by file size; a
    caller that wants to cancel raises from it, which ends the read at once.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder. Check the path, or pass a folder that "
            "holds interactions.csv (and items.csv) or a RecBole .inter/.item pair."
        )
    inter_path, found_items = _locate(path)
    if items_path is not None:
        found_items = Path(items_path)
        if not found_items.exists():
            raise DataError(
                f"{found_items}: item table not found. Check the --items path."
            )
    sizes = {p: _size(p) for p in (inter_path, found_items) if p is not None}
    total, done = max(sum(sizes.values()), 1), 0
    tables = {}
    for table in sizes:
        read = None
        if progress is not None:
            progress(done / total, f"reading {table.name}")

            def read(fraction, table=table, start=done):
                share = (start + fraction * sizes[table]) / total
                progress(share, f"reading {table.name}")

        tables[table] = read_table(table, progress=read)
        done += sizes[table]
    if progress is not None:
        progress(1.0, "read")
    items = tables[found_items] if found_items is not None else None
    return RawData(tables[inter_path], items, inter_path, found_items)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _locate(path: Path) -> tuple[Path, Path | None]:
    """Find the interaction table (and item table, if any) for a file or folder."""
    if path.is_file():
        return path, _sibling_items(path)
    tables = sorted(p for p in path.iterdir() if p.suffix.lower() in TABLE_SUFFIXES)
    for p in tables:
        if p.stem.lower() in ("interactions", "inter", "ratings"):
            return p, _sibling_items(p)
    inters = [p for p in tables if p.suffix.lower() == ".inter"]
    if len(inters) == 1:
        return inters[0], _sibling_items(inters[0])
    if len(tables) == 1:
        return tables[0], None
    names = ", ".join(p.name for p in tables) or "no readable tables"
    raise DataError(
        f"{path}: cannot tell which file holds the interactions (found: {names}). "
        "Name it interactions.csv (items in items.csv), use one .inter/.item pair, "
        "or open the interaction file itself."
    )


def _sibling_items(inter_path: Path) -> Path | None:
    """The item table that belongs with an interaction table, if one lies beside it."""
    if inter_path.suffix.lower() == ".inter":
        candidate = inter_path.with_suffix(".item")
        return candidate if candidate.exists() else None
    if inter_path.stem.lower() in ("interactions", "inter", "ratings"):
        for suffix in (inter_path.suffix, ".csv", ".tsv", ".parquet"):
            candidate = inter_path.with_name("items" + suffix)
            if candidate.exists():
                return candidate
    return None


def read_table(
    path: str | Path,
    nrows: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> pd.DataFrame:
    """Read one table; ``nrows`` limits the rows read (for previews).

    ``progress(fraction of the file's bytes read)`` is called as a text table is read
    (whatever it raises ends the read); the table is the same with or without it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            frame = frame.head(nrows) if nrows is not None else frame
        elif suffix in (".inter", ".item"):
            frame = _read_atomic(path, nrows, progress)
        else:
            frame = _read_delimited(path, nrows, progress)
    except DataError:
        raise
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot be read as a table ({exc}).") from exc
    except ImportError as exc:
        raise DataError(
            f"{path}: reading this format needs a missing library ({exc})."
        ) from exc
    if frame.columns.empty:
        raise DataError(f"{path}: the file is empty (no header row).")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


class _ReportingReader(io.RawIOBase):
    """A binary file that reports the share of its bytes read so far on each read."""

    def __init__(self, fh, size: int, progress: Callable[[float], None]):
        self.fh, self.size, self.progress = fh, max(size, 1), progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.fh.readinto(buffer)
        self.progress(min(1.0, self.fh.tell() / self.size))
        return count


def _read_csv(path: Path, progress: Callable[[float], None] | None, **options):
    """``pd.read_csv`` of ``path``, through a reporting reader when asked for
    progress (the parser reads its input in blocks, so the share moves as it parses)."""
    if progress is None:
        return pd.read_csv(path, **options)
    with open(path, "rb") as fh:
        reader = io.BufferedReader(_ReportingReader(fh, _size(path), progress))
        return pd.read_csv(reader, **options)


def _read_delimited(
    path: Path, nrows: int | None, progress: Callable[[float], None] | None = None
) -> pd.DataFrame:
    encoding = detect_encoding(path)
    sample = _read_text_sample(path, encoding)
    if not sample.strip():
        raise DataError(f"{path}: the file is empty.")
    sep = sniff_delimiter(sample, path.suffix.lower())
    try:
        return _read_csv(
            path, progress, sep=sep, encoding=encoding, nrows=nrows, low_memory=False
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty.") from exc


def _read_atomic(
    path: Path, nrows: int | None, progress: Callable[[float], None] | None = None
) -> pd.DataFrame:
    """RecBole atomic file: tab-separated, header ``name:type``; token columns stay
    text."""
    encoding = detect_encoding(path)
    sample = _read_text_sample(path, encoding)
    if not sample.strip():
        raise DataError(f"{path}: the file is empty.")
    header = sample.splitlines()[0].split("\t")
    names, dtypes = [], {}
    for field in header:
        name, _, kind = field.strip().partition(":")
        names.append(name)
        if kind in ("token", "token_seq", "float_seq"):
            dtypes[name] = "string"
    frame = _read_csv(
        path,
        progress,
        sep="\t",
        encoding=encoding,
        nrows=nrows,
        header=0,
        names=names,
        dtype=dtypes,
    )
    return frame


def detect_encoding(path: Path) -> str:
    """UTF-8 (BOM or not), UTF-16 by BOM, else Windows-1252 for legacy text files."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{path}: the file holds binary data (a NUL byte at offset {nul}), not "
            "text. "
            "Save it as UTF-8 CSV/TSV or Parquet."
        )
    # the whole file must decode, not only its head: pandas reads all of it later
    bad_utf8 = first_undecodable_byte(path, "utf-8")
    if bad_utf8 is None:
        return "utf-8"
    bad_cp1252 = first_undecodable_byte(path, "cp1252")
    if bad_cp1252 is not None:
        raise DataError(
            f"{path}: unreadable text encoding: byte {bad_utf8} is not UTF-8 and byte "
            f"{bad_cp1252} is not Windows-1252 either. Re-save the file as UTF-8."
        )
    # warned only now that the fallback is known to read the whole file
    log.warning("%s is not UTF-8 (byte %d); reading it as Windows-1252", path, bad_utf8)
    return "cp1252"


def first_undecodable_byte(path: Path, encoding: str) -> int | None:
    """Offset of the first byte of ``path`` that ``encoding`` cannot decode, or None
    when the whole file decodes."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.start counts from the start of the bytes the decoder held
                held = len(exc.object) - len(chunk)
                return offset - held + exc.start
            if not chunk:
                return None
            offset += len(chunk)


def _read_text_sample(path: Path, encoding: str) -> str:
    with open(path, encoding=encoding, errors="replace") as fh:
        return fh.read(_SNIFF_BYTES)


def sniff_delimiter(sample: str, suffix: str = "") -> str:
    """Guess the delimiter from the first lines; TSV files default to tab."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",\t;|")
        return dialect.delimiter
    except csv.Error:
        pass
    if suffix == ".tsv" or (lines and "\t" in lines[0]):
        return "\t"
    return ","
