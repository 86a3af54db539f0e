"""Read (and write) TFRecord files without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64 length            little-endian
    uint32 masked_crc32c(length bytes)
    bytes  data[length]
    uint32 masked_crc32c(data)

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)`` and
CRC-32C the Castagnoli CRC (polynomial 0x82f63b78, reflected). The length
CRC is always checked. Data CRCs are checked with the ``crc32c`` or
``google_crc32c`` package when one is installed; the pure-Python fallback
(about 1 MB/s) runs only when asked (``verify_data=True``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from nasbench_harness.importers._common import ImportFormatError

__all__ = ["crc32c", "fast_crc32c", "iter_records", "masked_crc32c", "write_records"]

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def _table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def _crc32c_python(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _find_fast():
    try:
        import crc32c as _mod  # type: ignore[import-not-found]

        return _mod.crc32c
    except ImportError:
        pass
    try:
        import google_crc32c  # type: ignore[import-not-found]

        return lambda data: google_crc32c.value(bytes(data))
    except ImportError:
        return None


#: A compiled CRC-32C function, or None when no package provides one.
fast_crc32c = _find_fast()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``."""
    if fast_crc32c is not None:
        return fast_crc32c(data)
    return _crc32c_python(data)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(path: str | Path, *, verify_data: bool | None = None) -> Iterator[bytes]:
    """Yield the data of each record of the TFRecord file at ``path``, in order.

    Parameters
    ----------
    path
        The TFRecord file.
    verify_data
        Check each record's data CRC: ``None`` (default) checks when a
        compiled CRC-32C package is installed, ``True`` always (slow without
        one), ``False`` never. Length CRCs are always checked.

    Raises
    ------
    ImportFormatError
        A truncated file or a CRC mismatch, naming the record and its offset.
    """
    path = Path(path)
    check = (fast_crc32c is not None) if verify_data is None else bool(verify_data)
    with open(path, "rb") as fh:
        index = 0
        while True:
            offset = fh.tell()
            header = fh.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise ImportFormatError(
                    f"{path}: record {index} at byte {offset} is truncated (header); "
                    "the file is incomplete, download it again"
                )
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise ImportFormatError(
                    f"{path}: record {index} at byte {offset} has a bad length checksum; "
                    "not a TFRecord file, or damaged"
                )
            data = fh.read(length)
            footer = fh.read(_FOOTER.size)
            if len(data) < length or len(footer) < _FOOTER.size:
                raise ImportFormatError(
                    f"{path}: record {index} at byte {offset} is truncated; the file is "
                    "incomplete, download it again"
                )
            if check and masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
                raise ImportFormatError(
                    f"{path}: record {index} at byte {offset} has a bad data checksum; "
                    "the file is damaged, download it again"
                )
            yield data
            index += 1


def write_records(path: str | Path, records: Iterable[bytes]) -> Path:
    """Write ``records`` as a TFRecord file (for tests and conversions)."""
    path = Path(path)
    with open(path, "wb") as fh:
        for data in records:
            length = struct.pack("<Q", len(data))
            fh.write(length)
            fh.write(struct.pack("<I", masked_crc32c(length)))
            fh.write(data)
            fh.write(struct.pack("<I", masked_crc32c(data)))
    return path
