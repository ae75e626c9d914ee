"""A pickle reader that never runs code from the file (no ``pickle`` module involved).

It interprets the binary opcodes of pickle protocols 2-5 itself and resolves every global through a
caller's ``find_class(module, name)`` (an allow-list: return None to refuse). Persistent ids,
out-of-band buffers, extension codes and the text opcodes of protocols 0-1 are refused. Used by
``convert_nvidia`` to read NVIDIA network pickles as data.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, BinaryIO


class UnpicklingRefused(ValueError):
    """The stream asks for something the reader does not allow (or is not a readable pickle)."""


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def restricted_load(f: BinaryIO, find_class: Callable[[str, str], Any],
                    check_build: Callable[[Any, Any], None] | None = None) -> Any:
    """Read one pickle from ``f``; globals come from ``find_class`` (None -> :class:`UnpicklingRefused`).

    ``check_build(inst, state)`` runs before every BUILD opcode applies ``state`` to ``inst`` and raises to refuse
    it: an allowed class whose ``__setstate__`` trusts its state (numpy's dtype) is checked there."""
    read = f.read
    stack: list = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def take(n: int) -> bytes:
        data = read(n)
        if len(data) != n:
            raise UnpicklingRefused("pickle data was truncated")
        return data

    def uint(n: int) -> int:
        return int.from_bytes(take(n), "little")

    def pop_mark() -> list:
        if not marks:
            raise UnpicklingRefused("unbalanced MARK in pickle")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    def glob(module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)  # protocol 2 pickles name Python 2 modules
        found = find_class(module, name)
        if found is None:
            raise UnpicklingRefused(f"global {module}.{name} is not allowed")
        return found

    def build(inst: Any, state: Any) -> None:
        if check_build is not None:
            check_build(inst, state)
        setstate = getattr(inst, "__setstate__", None)
        if setstate is not None and not isinstance(inst, type):
            setstate(state)
            return
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        if state:
            inst.__dict__.update(state)
        for k, v in (slots or {}).items():
            setattr(inst, k, v)

    while True:
        op = take(1)[0]
        if op == 0x80:  # PROTO
            if take(1)[0] > 5:
                raise UnpicklingRefused("unsupported pickle protocol")
        elif op == 0x95:  # FRAME: framing is advisory, read straight through
            take(8)
        elif op == 0x2E:  # STOP
            if len(stack) != 1:
                raise UnpicklingRefused("malformed pickle (stack not one object at STOP)")
            return stack[0]
        elif op == 0x28:  # MARK
            marks.append(len(stack))
        elif op == 0x30:  # POP
            stack.pop()
        elif op == 0x31:  # POP_MARK
            pop_mark()
        elif op == 0x32:  # DUP
            stack.append(stack[-1])
        elif op == 0x4E:  # NONE
            stack.append(None)
        elif op in (0x88, 0x89):  # NEWTRUE, NEWFALSE
            stack.append(op == 0x88)
        elif op == 0x4A:  # BININT
            stack.append(struct.unpack("<i", take(4))[0])
        elif op == 0x4B:  # BININT1
            stack.append(take(1)[0])
        elif op == 0x4D:  # BININT2
            stack.append(uint(2))
        elif op in (0x8A, 0x8B):  # LONG1, LONG4
            n = uint(1) if op == 0x8A else uint(4)
            stack.append(int.from_bytes(take(n), "little", signed=True))
        elif op == 0x47:  # BINFLOAT
            stack.append(struct.unpack(">d", take(8))[0])
        elif op in (0x8C, 0x58, 0x8D):  # SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
            n = uint({0x8C: 1, 0x58: 4, 0x8D: 8}[op])
            stack.append(take(n).decode("utf-8", "surrogatepass"))
        elif op in (0x43, 0x42, 0x8E, 0x96):  # SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
            n = uint({0x43: 1, 0x42: 4, 0x8E: 8, 0x96: 8}[op])
            data = take(n)
            stack.append(bytearray(data) if op == 0x96 else data)
        elif op in (0x55, 0x54):  # SHORT_BINSTRING, BINSTRING (Python 2 str)
            stack.append(take(uint(1) if op == 0x55 else uint(4)).decode("latin-1"))
        elif op == 0x29:  # EMPTY_TUPLE
            stack.append(())
        elif op in (0x85, 0x86, 0x87):  # TUPLE1-3
            n = op - 0x84
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif op == 0x74:  # TUPLE
            stack.append(tuple(pop_mark()))
        elif op == 0x5D:  # EMPTY_LIST
            stack.append([])
        elif op == 0x6C:  # LIST
            stack.append(pop_mark())
        elif op == 0x61:  # APPEND
            v = stack.pop()
            stack[-1].append(v)
        elif op == 0x65:  # APPENDS
            items = pop_mark()
            stack[-1].extend(items)
        elif op == 0x7D:  # EMPTY_DICT
            stack.append({})
        elif op == 0x64:  # DICT
            items = pop_mark()
            stack.append(dict(zip(items[::2], items[1::2])))
        elif op == 0x73:  # SETITEM
            v, k = stack.pop(), stack.pop()
            stack[-1][k] = v
        elif op == 0x75:  # SETITEMS
            items = pop_mark()
            for k, v in zip(items[::2], items[1::2]):
                stack[-1][k] = v
        elif op == 0x8F:  # EMPTY_SET
            stack.append(set())
        elif op == 0x90:  # ADDITEMS
            items = pop_mark()
            stack[-1].update(items)
        elif op == 0x91:  # FROZENSET
            stack.append(frozenset(pop_mark()))
        elif op == 0x94:  # MEMOIZE
            memo[len(memo)] = stack[-1]
        elif op in (0x71, 0x72):  # BINPUT, LONG_BINPUT
            memo[uint(1) if op == 0x71 else uint(4)] = stack[-1]
        elif op in (0x68, 0x6A):  # BINGET, LONG_BINGET
            key = uint(1) if op == 0x68 else uint(4)
            if key not in memo:
                raise UnpicklingRefused(f"malformed pickle (memo key {key} missing)")
            stack.append(memo[key])
        elif op == 0x63:  # GLOBAL "module\nname\n"
            module = f.readline()[:-1].decode("utf-8")
            name = f.readline()[:-1].decode("utf-8")
            stack.append(glob(module, name))
        elif op == 0x93:  # STACK_GLOBAL
            name, module = stack.pop(), stack.pop()
            if not isinstance(module, str) or not isinstance(name, str):
                raise UnpicklingRefused("malformed pickle (STACK_GLOBAL of non-strings)")
            stack.append(glob(module, name))
        elif op == 0x52:  # REDUCE
            args = stack.pop()
            func = stack.pop()
            stack.append(func(*args))
        elif op == 0x81:  # NEWOBJ
            args = stack.pop()
            cls = stack.pop()
            stack.append(cls.__new__(cls, *args))
        elif op == 0x92:  # NEWOBJ_EX
            kwargs, args = stack.pop(), stack.pop()
            cls = stack.pop()
            stack.append(cls.__new__(cls, *args, **kwargs))
        elif op == 0x62:  # BUILD
            state = stack.pop()
            build(stack[-1], state)
        elif op in (0x50, 0x51):  # PERSID, BINPERSID
            raise UnpicklingRefused("persistent ids are not allowed")
        else:
            raise UnpicklingRefused(f"unsupported pickle opcode 0x{op:02x} (only binary protocols 2-5 are read)")
