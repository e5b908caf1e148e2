"""IPython's pretty printer (IPython.lib.pretty, BSD-3), for a cell's text/plain: the
same line breaking at 79 columns as IPython's ``Out[n]`` for lists, tuples, dicts and
sets, ``repr()`` for everything else. Stdlib only, nothing imported: the lean runner
imports this module before it forks."""

from __future__ import annotations

MAX_WIDTH = 79
MAX_SEQ_LENGTH = 1000  # IPython's: items past it print as "..."


def pretty(obj: object, max_width: int = MAX_WIDTH) -> str:
    printer = _Printer(max_width)
    printer.pretty(obj)
    printer.flush()
    return "".join(printer.output)


class _Text:
    def __init__(self) -> None:
        self.objs: list[str] = []
        self.width = 0

    def output(self, out: list, output_width: int) -> int:
        out.extend(self.objs)
        return output_width + self.width

    def add(self, obj: str, width: int) -> None:
        self.objs.append(obj)
        self.width += width


class _Breakable:
    def __init__(self, sep: str, width: int, printer: "_Printer") -> None:
        self.obj, self.width, self.printer = sep, width, printer
        self.indentation = printer.indentation
        self.group = printer.group_stack[-1]
        self.group.breakables.append(self)

    def output(self, out: list, output_width: int) -> int:
        self.group.breakables.pop(0)
        if self.group.want_break:
            out.append("\n" + " " * self.indentation)
            return self.indentation
        if not self.group.breakables:
            self.printer.group_queue.remove(self.group)
        out.append(self.obj)
        return output_width + self.width


class _Group:
    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.breakables: list[_Breakable] = []
        self.want_break = False


class _GroupQueue:
    def __init__(self, *groups: _Group) -> None:
        self.queue: list[list[_Group]] = []
        for group in groups:
            self.enq(group)

    def enq(self, group: _Group) -> None:
        while group.depth > len(self.queue) - 1:
            self.queue.append([])
        self.queue[group.depth].append(group)

    def deq(self) -> _Group | None:
        for stack in self.queue:
            for idx, group in enumerate(reversed(stack)):
                if group.breakables:
                    del stack[idx]
                    group.want_break = True
                    return group
            for group in stack:
                group.want_break = True
            del stack[:]
        return None

    def remove(self, group: _Group) -> None:
        try:
            self.queue[group.depth].remove(group)
        except ValueError:
            pass


class _Printer:
    def __init__(self, max_width: int) -> None:
        self.max_width = max_width
        self.output: list[str] = []
        self.output_width = 0
        self.buffer_width = 0
        self.buffer: list = []
        root = _Group(0)
        self.group_stack = [root]
        self.group_queue = _GroupQueue(root)
        self.indentation = 0
        self.stack: list[int] = []  # ids of the containers being printed: cycles

    def _break_outer_groups(self) -> None:
        while self.max_width < self.output_width + self.buffer_width:
            group = self.group_queue.deq()
            if not group:
                return
            while group.breakables:
                x = self.buffer.pop(0)
                self.output_width = x.output(self.output, self.output_width)
                self.buffer_width -= x.width
            while self.buffer and isinstance(self.buffer[0], _Text):
                x = self.buffer.pop(0)
                self.output_width = x.output(self.output, self.output_width)
                self.buffer_width -= x.width

    def text(self, obj: str) -> None:
        width = len(obj)
        if self.buffer:
            text = self.buffer[-1]
            if not isinstance(text, _Text):
                text = _Text()
                self.buffer.append(text)
            text.add(obj, width)
            self.buffer_width += width
            self._break_outer_groups()
        else:
            self.output.append(obj)
            self.output_width += width

    def breakable(self, sep: str = " ") -> None:
        width = len(sep)
        group = self.group_stack[-1]
        if group.want_break:
            self.flush()
            self.output.append("\n" + " " * self.indentation)
            self.output_width = self.indentation
            self.buffer_width = 0
        else:
            self.buffer.append(_Breakable(sep, width, self))
            self.buffer_width += width
            self._break_outer_groups()

    def break_(self) -> None:
        group = self.group_queue.deq()
        if group:
            self._break_outer_groups()
        self.flush()
        self.output.append("\n" + " " * self.indentation)
        self.output_width = self.indentation
        self.buffer_width = 0

    def begin_group(self, indent: int = 0, open: str = "") -> None:
        if open:
            self.text(open)
        group = _Group(self.group_stack[-1].depth + 1)
        self.group_stack.append(group)
        self.group_queue.enq(group)
        self.indentation += indent

    def end_group(self, dedent: int = 0, close: str = "") -> None:
        self.indentation -= dedent
        group = self.group_stack.pop()
        if not group.breakables:
            self.group_queue.remove(group)
        if close:
            self.text(close)

    def flush(self) -> None:
        for data in self.buffer:
            self.output_width += data.output(self.output, self.output_width)
        self.buffer.clear()
        self.buffer_width = 0

    # -- objects ----------------------------------------------------------------------
    def pretty(self, obj: object) -> None:
        cls = type(obj)
        printer = _PRINTERS.get(cls)
        cycle = id(obj) in self.stack
        if printer is None:
            # A subclass of a container prints as its base unless it has its own repr
            # (IPython's rule); anything else is its repr, line by line.
            for base in cls.__mro__[1:]:
                if base in _PRINTERS and cls.__repr__ is base.__repr__:
                    printer = _PRINTERS[base]
                    break
        if printer is None:
            if isinstance(obj, type):
                return self._type(obj)
            if not any("__repr__" in vars(base) for base in cls.__mro__[:-1]):
                # No repr of its own: IPython's "<module.Class at 0x...>"
                self.begin_group(1, "<")
                self._type(cls)
                self.text(f" at 0x{id(obj):x}")
                return self.end_group(1, ">")
            return self._repr(obj)
        self.stack.append(id(obj))
        try:
            printer(obj, self, cycle)
        finally:
            self.stack.pop()

    def _type(self, cls: type) -> None:
        """A class as IPython names it: `int`, `collections.OrderedDict`."""
        if [m for m in type(cls).__mro__ if "__repr__" in vars(m)][:1] != [type]:
            return self._repr(cls)  # its metaclass has a repr of its own
        module = getattr(cls, "__module__", None)
        name = getattr(cls, "__qualname__", None) or cls.__name__
        self.text(name if module in (None, "builtins") else f"{module}.{name}")

    def _repr(self, obj: object) -> None:
        lines = repr(obj).splitlines()
        self.begin_group()
        for idx, line in enumerate(lines):
            if idx:
                self.break_()
            self.text(line)
        self.end_group()

    def items(self, seq):  # IPython's _enumerate: at most MAX_SEQ_LENGTH, then "..."
        for idx, x in enumerate(seq):
            if idx >= MAX_SEQ_LENGTH:
                self.text(",")
                self.breakable()
                self.text("...")
                return
            yield idx, x


def _sequence(start: str, end: str):
    def printer(obj, p: _Printer, cycle: bool) -> None:
        if cycle:
            return p.text(start + "..." + end)
        step = len(start)
        p.begin_group(step, start)
        for idx, x in p.items(obj):
            if idx:
                p.text(",")
                p.breakable()
            p.pretty(x)
        if len(obj) == 1 and isinstance(obj, tuple):
            p.text(",")  # a 1-tuple
        p.end_group(step, end)

    return printer


def _set(obj, p: _Printer, cycle: bool) -> None:
    frozen = isinstance(obj, frozenset)
    if not obj:
        return p.text("frozenset()" if frozen else "set()")
    start, end = ("frozenset({", "})") if frozen else ("{", "}")
    if cycle:
        return p.text(start + "..." + end)
    step = len(start)
    p.begin_group(step, start)
    items = list(obj)
    if len(items) <= MAX_SEQ_LENGTH:
        try:
            items = sorted(items)
        except Exception:  # noqa: BLE001 - unorderable: as they come, as IPython does
            pass
    for idx, x in p.items(items):
        if idx:
            p.text(",")
            p.breakable()
        p.pretty(x)
    p.end_group(step, end)


def _dict(obj, p: _Printer, cycle: bool) -> None:
    if cycle:
        return p.text("{...}")
    p.begin_group(1, "{")
    for idx, key in p.items(obj.keys()):
        if idx:
            p.text(",")
            p.breakable()
        p.pretty(key)
        p.text(": ")
        p.pretty(obj[key])
    p.end_group(1, "}")


_PRINTERS = {
    list: _sequence("[", "]"),
    tuple: _sequence("(", ")"),
    dict: _dict,
    set: _set,
    frozenset: _set,
}
