"""The imports and exports of a WebAssembly module, read from its binary.

The admin shows what a module asks of the host (imports) and offers (exports). Reading the
type, import, function and export sections is enough for that: nothing is compiled or run, so
looking at a module costs a file read, whatever the module does.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WasmExport", "WasmImport", "WasmInterface", "read_interface"]

_MAGIC = b"\0asm"
_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
_VALTYPES = {
    0x7F: "i32",
    0x7E: "i64",
    0x7D: "f32",
    0x7C: "f64",
    0x7B: "v128",
    0x70: "funcref",
    0x6F: "externref",
}


@dataclass(frozen=True)
class WasmImport:
    module: str
    name: str
    kind: str  # func, table, memory, global or tag
    signature: str  # "(i32, i32) -> i64" for a function; limits or type otherwise


@dataclass(frozen=True)
class WasmExport:
    name: str
    kind: str
    signature: str


@dataclass(frozen=True)
class WasmInterface:
    imports: tuple[WasmImport, ...]
    exports: tuple[WasmExport, ...]


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError("unexpected end of section")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("LEB128 number too long")

    def name(self) -> str:
        size = self.uleb()
        if self.pos + size > self.end:
            raise ValueError("name runs past the end of its section")
        raw = self.data[self.pos : self.pos + size]
        self.pos += size
        return raw.decode("utf-8", "replace")

    def valtype(self) -> str:
        b = self.byte()
        try:
            return _VALTYPES[b]
        except KeyError:
            raise ValueError(f"value type 0x{b:02x} is not supported here") from None

    def limits(self) -> str:
        flags = self.byte()
        minimum = self.uleb()
        text = f"min {minimum}"
        if flags & 0x01:
            text += f", max {self.uleb()}"
        if flags & 0x02:
            text += ", shared"
        if flags & 0x04:
            text += ", 64-bit"
        return text


def _signature(reader: _Reader) -> str:
    form = reader.byte()
    if form != 0x60:
        raise ValueError(f"type form 0x{form:02x} is not supported here")
    params = [reader.valtype() for _ in range(reader.uleb())]
    results = [reader.valtype() for _ in range(reader.uleb())]
    out = f"({', '.join(params)})"
    if results:
        out += " -> " + (results[0] if len(results) == 1 else f"({', '.join(results)})")
    return out


def _global(reader: _Reader) -> str:
    valtype = reader.valtype()
    return f"mut {valtype}" if reader.byte() else valtype


def read_interface(data: bytes) -> WasmInterface:
    """Imports and exports of the module in ``data``; ``ValueError`` if it cannot be read."""
    if data[:4] != _MAGIC or len(data) < 8:
        raise ValueError("not a WebAssembly module (the magic number is missing)")
    if data[4:8] != b"\x01\0\0\0":
        raise ValueError("not a WebAssembly core module of version 1")
    types: list[str] = []
    func_types: list[int] = []  # imported functions first, then the module's own
    imports: list[WasmImport] = []
    raw_exports: list[tuple[str, int, int]] = []
    top = _Reader(data, 8)
    while top.pos < top.end:
        section = top.byte()
        size = top.uleb()
        end = top.pos + size
        if end > len(data):
            raise ValueError(f"section {section} runs past the end of the module")
        reader = _Reader(data, top.pos, end)
        if section == 1:
            types = [_signature(reader) for _ in range(reader.uleb())]
        elif section == 2:
            for _ in range(reader.uleb()):
                module, name = reader.name(), reader.name()
                kind = reader.byte()
                if kind == 0:
                    index = reader.uleb()
                    func_types.append(index)
                    signature = types[index] if index < len(types) else "?"
                elif kind == 1:
                    signature = f"{reader.valtype()}, {reader.limits()}"
                elif kind == 2:
                    signature = f"{reader.limits()} pages"
                elif kind == 3:
                    signature = _global(reader)
                elif kind == 4:
                    reader.byte()
                    index = reader.uleb()
                    signature = types[index] if index < len(types) else "?"
                else:
                    raise ValueError(f"import kind {kind} is not supported here")
                imports.append(WasmImport(module, name, _KINDS[kind], signature))
        elif section == 3:
            func_types.extend(reader.uleb() for _ in range(reader.uleb()))
        elif section == 7:
            for _ in range(reader.uleb()):
                name = reader.name()
                kind = reader.byte()
                raw_exports.append((name, kind, reader.uleb()))
        top.pos = end
    exports = []
    for name, kind, index in raw_exports:
        signature = ""
        if kind == 0 and index < len(func_types) and func_types[index] < len(types):
            signature = types[func_types[index]]
        exports.append(WasmExport(name, _KINDS.get(kind, f"kind {kind}"), signature))
    return WasmInterface(tuple(imports), tuple(exports))
