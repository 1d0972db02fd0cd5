"""Rule conditions: a small expression language parsed once into Polars expressions (never ``eval``).

Grammar (case-insensitive keywords; ``#`` is not a comment inside an expression)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum        := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := ("-" | "+") unary | primary
    primary    := NUMBER | "true" | "false" | NAME | FUNC "(" expr ("," expr)* ")" | "(" expr ")"
    FUNC       := "abs" | "min" | "max"

Names are KPI names, signal role names and asset parameters (rules/packs.py checks them at load).
Semantics follow SQL three-valued logic: a NULL input (no good data, kiln stopped) makes a comparison
NULL, which never counts as true; ``x / 0`` is NULL rather than inf.

Why a hand-written parser rather than ``ast.parse(mode="eval")`` plus a whitelist walk: the tree,
type checks and Polars compilation below stay either way, so ``ast`` would replace only the ~160-line
lexer and parser (a prototype came to ~390 lines, not ~250). Python's grammar is not this one: no
case-insensitive ``AND``/``NOT``, no leading whitespace or line breaks (TOML multi-line strings), a
bare "invalid syntax" without a column for ``x >`` and wrong columns for ``&&`` or ``(x > 1``. Worse,
it accepts silently what a pack must not contain: ``#`` starts a comment (``x > 1 # and y < 2``
loses its second half), ``0x10``, ``1_000``, non-ASCII names, and its offsets count UTF-8 bytes.
Restoring all that takes a token pass, i.e. the lexer kept here (tests/rules/test_rules_expr.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, cast

import polars as pl

ArithOp = Literal["+", "-", "*", "/"]
CompareOp = Literal["<", "<=", ">", ">=", "==", "!="]
LogicOp = Literal["and", "or"]

FUNCTIONS: dict[str, tuple[int, int | None]] = {"abs": (1, 1), "min": (2, None), "max": (2, None)}
KEYWORDS = frozenset({"and", "or", "not", "true", "false"})


class ExprError(ValueError):
    """A condition that cannot be parsed or type-checked; ``column`` is 1-based (0 = whole text)."""

    def __init__(self, message: str, column: int = 0) -> None:
        super().__init__(f"{message} at column {column}" if column else message)
        self.column = column


# ----------------------------------------------------------------------------------------- AST
@dataclass(frozen=True, slots=True)
class Num:
    value: float


@dataclass(frozen=True, slots=True)
class BoolLit:
    value: bool


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node


@dataclass(frozen=True, slots=True)
class Arith:
    op: ArithOp
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare:
    op: CompareOp
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logic:
    op: LogicOp
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Node, ...]


Node = Num | BoolLit | Name | Neg | Arith | Compare | Logic | Not | Call

# ----------------------------------------------------------------------------------------- lexer
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|,)
  | (?P<bad>.)
    """,
    re.VERBOSE,
)


_TokKind = Literal["num", "name", "op", "end"]


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: _TokKind
    text: str
    column: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        col = m.start() + 1
        if kind == "ws":
            continue
        if kind == "bad":
            hint = " (use == to compare)" if m.group() == "=" else ""
            hint = " (use and / or / not)" if m.group() in "&|!" else hint
            raise ExprError(f"unexpected character {m.group()!r}{hint}", col)
        out.append(_Tok(cast(_TokKind, kind), m.group(), col))
    out.append(_Tok("end", "", len(text) + 1))
    return out


# ----------------------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _is_kw(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.text.lower() == word

    def _eat_op(self, *ops: str) -> str | None:
        if self.tok.kind == "op" and self.tok.text in ops:
            self.i += 1
            return self.toks[self.i - 1].text
        return None

    def _expect_op(self, op: str) -> None:
        if self._eat_op(op) is None:
            raise ExprError(f"expected {op!r}, found {self.tok.text or 'end of text'!r}", self.tok.column)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExprError("empty expression")
        node = self._or()
        rest = self.toks[self.i]
        if rest.kind != "end":
            raise ExprError(f"unexpected {rest.text!r}", rest.column)
        return node

    def _or(self) -> Node:
        parts = [self._and()]
        while self._is_kw("or"):
            self.i += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Logic("or", tuple(parts))

    def _and(self) -> Node:
        parts = [self._not()]
        while self._is_kw("and"):
            self.i += 1
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else Logic("and", tuple(parts))

    def _not(self) -> Node:
        if self._is_kw("not"):
            self.i += 1
            return Not(self._not())
        return self._comparison()

    def _comparison(self) -> Node:
        left = self._sum()
        op = self._eat_op("<", "<=", ">", ">=", "==", "!=")
        if op is None:
            return left
        right = self._sum()
        if self.tok.kind == "op" and self.tok.text in ("<", "<=", ">", ">=", "==", "!="):
            raise ExprError("chained comparisons are ambiguous: use 'a < b and b < c'", self.tok.column)
        return Compare(op, left, right)  # type: ignore[arg-type]

    def _sum(self) -> Node:
        node = self._term()
        while (op := self._eat_op("+", "-")) is not None:
            node = Arith(op, node, self._term())  # type: ignore[arg-type]
        return node

    def _term(self) -> Node:
        node = self._unary()
        while (op := self._eat_op("*", "/")) is not None:
            node = Arith(op, node, self._unary())  # type: ignore[arg-type]
        return node

    def _unary(self) -> Node:
        if self._eat_op("-") is not None:
            inner = self._unary()
            return Num(-inner.value) if isinstance(inner, Num) else Neg(inner)
        if self._eat_op("+") is not None:
            return self._unary()
        return self._primary()

    def _primary(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.i += 1
            return Num(float(tok.text))
        if self._eat_op("(") is not None:
            node = self._or()
            self._expect_op(")")
            return node
        if tok.kind == "name":
            word = tok.text.lower()
            self.i += 1
            if word in ("true", "false"):
                return BoolLit(word == "true")
            if word in KEYWORDS:
                raise ExprError(f"unexpected keyword {tok.text!r}", tok.column)
            if self.tok.kind == "op" and self.tok.text == "(":
                return self._call(word, tok)
            return Name(tok.text, tok.column)
        raise ExprError(f"unexpected {tok.text or 'end of text'!r}", tok.column)

    def _call(self, func: str, tok: _Tok) -> Node:
        if func not in FUNCTIONS:
            raise ExprError(f"unknown function {tok.text!r} (known: {', '.join(FUNCTIONS)})", tok.column)
        self._expect_op("(")
        args = [self._or()]
        while self._eat_op(",") is not None:
            args.append(self._or())
        self._expect_op(")")
        lo, hi = FUNCTIONS[func]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = str(lo) if lo == hi else f"at least {lo}"
            raise ExprError(f"{func}() takes {want} argument(s), got {len(args)}", tok.column)
        return Call(func, tuple(args))


# ----------------------------------------------------------------------------------------- checks
def _kind(node: Node) -> Literal["number", "bool"]:
    """Type-check the tree: comparisons take numbers, and/or/not take booleans."""
    match node:
        case Num() | Name():
            return "number"
        case BoolLit():
            return "bool"
        case Neg(operand=o):
            _need(o, "number", "'-'")
            return "number"
        case Arith(op=op, left=a, right=b):
            _need(a, "number", repr(op))
            _need(b, "number", repr(op))
            return "number"
        case Call(func=f, args=args):
            for a in args:
                _need(a, "number", f"{f}()")
            return "number"
        case Compare(op=op, left=a, right=b):
            _need(a, "number", repr(op))
            _need(b, "number", repr(op))
            return "bool"
        case Logic(op=op, operands=ops):
            for o in ops:
                _need(o, "bool", repr(op))
            return "bool"
        case Not(operand=o):
            _need(o, "bool", "'not'")
            return "bool"
    raise AssertionError(node)  # pragma: no cover


def _need(node: Node, kind: str, where: str) -> None:
    got = _kind(node)
    if got != kind:
        what = "a number" if kind == "number" else "a condition (true/false)"
        raise ExprError(f"{where} needs {what}")


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition: its source text, tree, the names it reads and the Polars expression."""

    text: str
    tree: Node
    names: frozenset[str]

    def expr(self) -> pl.Expr:
        return to_polars(self.tree)

    def first_comparison(self) -> Compare | None:
        return first_comparison(self.tree)


def parse_condition(text: str) -> Condition:
    """Parse a boolean condition (``when``, ``clear``, ``suppress_when``)."""
    tree = _Parser(text).parse()
    if _kind(tree) != "bool":
        raise ExprError("a condition must compare something, e.g. 'x > 10'")
    return Condition(text, tree, frozenset(names(tree)))


def parse_value(text: str) -> Node:
    """Parse a numeric expression (used in tests and for computed thresholds)."""
    tree = _Parser(text).parse()
    if _kind(tree) != "number":
        raise ExprError("expected a number, not a condition")
    return tree


def _name_nodes(node: Node) -> Iterator[Name]:
    """Every name node of the tree, left to right."""
    match node:
        case Name():
            yield node
        case Neg(operand=o) | Not(operand=o):
            yield from _name_nodes(o)
        case Arith(left=a, right=b) | Compare(left=a, right=b):
            yield from _name_nodes(a)
            yield from _name_nodes(b)
        case Logic(operands=ops) | Call(args=ops):
            for o in ops:
                yield from _name_nodes(o)
        case _:
            pass


def names(node: Node) -> list[str]:
    """Names read by the expression, in order of first appearance."""
    return list(dict.fromkeys(n.name for n in _name_nodes(node)))


def name_columns(node: Node) -> dict[str, int]:
    """Each name with the column of its first use (for error messages)."""
    out: dict[str, int] = {}
    for n in _name_nodes(node):
        out.setdefault(n.name, n.column)
    return out


def first_comparison(node: Node) -> Compare | None:
    """The first comparison in reading order: its sides are an alert's ``value`` and ``threshold``."""
    match node:
        case Compare():
            return node
        case Logic(operands=ops):
            for o in ops:
                found = first_comparison(o)
                if found is not None:
                    return found
        case Not(operand=o):
            return first_comparison(o)
        case _:
            pass
    return None


def single_name(node: Node) -> str | None:
    """The name when the expression is exactly one name (its unit becomes the alert's unit)."""
    return node.name if isinstance(node, Name) else None


def to_polars(node: Node) -> pl.Expr:
    """Compile the tree to one Polars expression over a frame whose columns are the names."""
    match node:
        case Num(value=v):
            return pl.lit(v, dtype=pl.Float64)
        case BoolLit(value=b):
            return pl.lit(b, dtype=pl.Boolean)
        case Name(name=nm):
            return pl.col(nm).cast(pl.Float64)
        case Neg(operand=o):
            return -to_polars(o)
        case Arith(op=op, left=a, right=b):
            x, y = to_polars(a), to_polars(b)
            if op == "+":
                return x + y
            if op == "-":
                return x - y
            if op == "*":
                return x * y
            return pl.when(y != 0).then(x / y).otherwise(None)
        case Compare(op=op, left=a, right=b):
            x, y = to_polars(a), to_polars(b)
            return {
                "<": x < y,
                "<=": x <= y,
                ">": x > y,
                ">=": x >= y,
                "==": x == y,
                "!=": x != y,
            }[op]
        case Logic(op=op, operands=ops):
            exprs = [to_polars(o) for o in ops]
            out = exprs[0]
            for e in exprs[1:]:
                out = (out & e) if op == "and" else (out | e)
            return out
        case Not(operand=o):
            return ~to_polars(o)
        case Call(func=f, args=args):
            xs = [to_polars(a) for a in args]
            if f == "abs":
                return xs[0].abs()
            any_null = pl.any_horizontal(*[x.is_null() for x in xs])
            agg = pl.min_horizontal(*xs) if f == "min" else pl.max_horizontal(*xs)
            return pl.when(any_null).then(None).otherwise(agg)
    raise AssertionError(node)  # pragma: no cover


def evaluate_scalar(node: Node, values: dict[str, float | None]) -> float | bool | None:
    """Reference evaluation of one row in plain Python (tests and the per-row benchmark baseline)."""
    match node:
        case Num(value=v):
            return v
        case BoolLit(value=b):
            return b
        case Name(name=nm):
            return values.get(nm)
        case Neg(operand=o):
            inner = evaluate_scalar(o, values)
            return None if inner is None else -float(inner)
        case Arith(op=op, left=a, right=b):
            x, y = evaluate_scalar(a, values), evaluate_scalar(b, values)
            if x is None or y is None:
                return None
            fx, fy = float(x), float(y)
            if op == "+":
                return fx + fy
            if op == "-":
                return fx - fy
            if op == "*":
                return fx * fy
            return None if fy == 0 else fx / fy
        case Compare(op=op, left=a, right=b):
            x, y = evaluate_scalar(a, values), evaluate_scalar(b, values)
            if x is None or y is None:
                return None
            fx, fy = float(x), float(y)
            return {
                "<": fx < fy,
                "<=": fx <= fy,
                ">": fx > fy,
                ">=": fx >= fy,
                "==": fx == fy,
                "!=": fx != fy,
            }[op]
        case Logic(op=op, operands=ops):
            vals = [evaluate_scalar(o, values) for o in ops]
            if op == "and":
                if any(x is False for x in vals):
                    return False
                return None if any(x is None for x in vals) else True
            if any(x is True for x in vals):
                return True
            return None if any(x is None for x in vals) else False
        case Not(operand=o):
            inner = evaluate_scalar(o, values)
            return None if inner is None else not inner
        case Call(func=f, args=args):
            xs = [evaluate_scalar(a, values) for a in args]
            if any(x is None for x in xs):
                return None
            fs = [float(x) for x in xs if x is not None]
            if f == "abs":
                return abs(fs[0])
            return min(fs) if f == "min" else max(fs)
    raise AssertionError(node)  # pragma: no cover
