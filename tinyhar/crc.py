"""CRC-32 of model bytes as the firmware and the hello exchange report it (zlib's IEEE CRC-32)."""

from __future__ import annotations

import zlib


def crc32(data: bytes) -> int:
    """IEEE CRC-32 (zlib.crc32) as an unsigned 32-bit int."""
    return zlib.crc32(bytes(data)) & 0xFFFFFFFF


def crc32_hex(data: bytes) -> str:
    """The CRC-32 as '0x%08x'."""
    return f"0x{crc32(data):08x}"
