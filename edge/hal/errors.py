"""Typed errors of the HAL. Every bad input or device failure maps to one of these."""

from __future__ import annotations


class HalError(Exception):
    """Base of every HAL error."""


class MapError(HalError):
    """A register map is invalid. Names the file and, where known, the point."""

    def __init__(self, file: str, point: str | None, message: str) -> None:
        self.file = file
        self.point = point
        self.message = message
        where = f"{file}: point {point!r}" if point else file
        super().__init__(f"{where}: {message}")


class CodecError(HalError):
    """A value cannot be encoded into, or decoded from, registers."""


class WriteRefusedError(HalError):
    """A planned write is not allowed: non-writable register or value out of bounds."""


class UnknownModelError(HalError):
    """The device identified itself as a model the map does not cover."""


class TransportError(HalError):
    """Base of errors talking to a device."""

    kind = "transport"


class DeviceTimeoutError(TransportError):
    """No reply within the map's timeout."""

    kind = "timeout"


class DeviceUnreachableError(TransportError):
    """TCP connection refused, reset or closed."""

    kind = "unreachable"


class ModbusExceptionError(TransportError):
    """The device answered with a Modbus exception code."""

    kind = "exception"

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"Modbus exception {code:#04x}: {message}")


class MalformedReplyError(TransportError):
    """A reply with the wrong number of registers or an unexpected shape."""

    kind = "malformed"
