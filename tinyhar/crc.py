"""CRC-32 of model bytes as the firmware and the hello exchange report it (zlib's IEEE CRC-32)."""

from __future__ import annotations

import zlib


def crc32(data: bytes) -> int:
    """IEEE CRC-32 (zlib.crc32) as an unsigned 32-bit int."""
    return zlib.crc32(bytes(data)) & 0xFFFFFFFF


def format_crc32(crc: int) -> str:
    """A CRC-32 as records and reports write it: '0x%08x'."""
    return f"0x{crc:08x}"
