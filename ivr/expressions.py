"""The small expression language of ``branch`` conditions: parsed at load time, never ``eval``.

::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") operand]
    operand    := VARIABLE | NUMBER | STRING | true | false | null | "[" literal, ... "]"
                  | "(" expr ")"

A bare operand is tested for truthiness. A variable that is not set evaluates to ``null``.
Ordering comparisons between values of different kinds (a number and ``null``) are false.
:func:`parse_expression` raises :class:`ivr.errors.ExpressionError` with the offending
position, which the validator maps to a YAML line and column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from ivr.errors import ExpressionError

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "BoolOp",
    "Compare",
    "Expression",
    "ListLit",
    "Lit",
    "Not",
    "Var",
    "parse_expression",
    "variable_tokens",
]

LiteralValue = str | Decimal | bool | None


class Expression:
    """A parsed condition: evaluate it against session variables."""

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The value of the expression (truthiness decides a branch)."""
        raise NotImplementedError

    def test(self, variables: Mapping[str, Any]) -> bool:
        """True when the expression holds for ``variables``."""
        return bool(self.evaluate(variables))

    def variables(self) -> frozenset[str]:
        """Names of the variables the expression reads."""
        return frozenset()


@dataclass(frozen=True)
class Var(Expression):
    """A variable reference; unset variables are ``None``."""

    name: str

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The variable's value or ``None``."""
        return variables.get(self.name)

    def variables(self) -> frozenset[str]:
        """This variable."""
        return frozenset({self.name})


@dataclass(frozen=True)
class Lit(Expression):
    """A literal: a string, a Decimal number, a bool or ``None``."""

    value: LiteralValue

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The literal value."""
        return self.value


@dataclass(frozen=True)
class ListLit(Expression):
    """A list of literals (right-hand side of ``in``)."""

    items: tuple[LiteralValue, ...]

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The items as a tuple."""
        return self.items


@dataclass(frozen=True)
class Not(Expression):
    """Logical negation."""

    operand: Expression

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """``not operand``."""
        return not self.operand.test(variables)

    def variables(self) -> frozenset[str]:
        """Variables of the operand."""
        return self.operand.variables()


@dataclass(frozen=True)
class BoolOp(Expression):
    """``and`` / ``or`` of two or more operands (short-circuiting)."""

    op: Literal["and", "or"]
    operands: tuple[Expression, ...]

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """Conjunction or disjunction of the operands' truthiness."""
        if self.op == "and":
            return all(o.test(variables) for o in self.operands)
        return any(o.test(variables) for o in self.operands)

    def variables(self) -> frozenset[str]:
        """Variables of all operands."""
        return frozenset().union(*(o.variables() for o in self.operands))


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, Decimal | int | float) or isinstance(right, Decimal | int | float):
        a, b = _as_number(left), _as_number(right)
        return a is not None and b is not None and a == b
    if left is None or right is None:
        return left is None and right is None
    return bool(str(left) == str(right))


_ORDER_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Compare(Expression):
    """A comparison ``left OP right``.

    Numbers compare numerically (a string variable holding digits counts as a number when
    compared with a number literal); strings compare as strings; anything else is unordered.
    """

    op: Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]
    left: Expression
    right: Expression

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The comparison's truth value."""
        left = self.left.evaluate(variables)
        right = self.right.evaluate(variables)
        if self.op == "==":
            return _equal(left, right)
        if self.op == "!=":
            return not _equal(left, right)
        if self.op in ("in", "not in"):
            if isinstance(right, tuple | list | set | frozenset):
                found = any(_equal(left, item) for item in right)
            elif isinstance(right, str) and isinstance(left, str):
                found = left in right
            else:
                found = False
            return found if self.op == "in" else not found
        a, b = _as_number(left), _as_number(right)
        if a is not None and b is not None:
            return _ORDER_OPS[self.op](a, b)
        if isinstance(left, str) and isinstance(right, str):
            return _ORDER_OPS[self.op](left, right)
        return False

    def variables(self) -> frozenset[str]:
        """Variables of both sides."""
        return self.left.variables() | self.right.variables()


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)

_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
MAX_EXPRESSION_LENGTH = 500


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"unexpected character {text[pos]!r}", pos)
        kind = match.lastgroup or ""
        if kind != "ws":
            value = match.group()
            if (kind == "name" and value in _KEYWORDS) or kind == "punct":
                kind = value
            tokens.append(_Token(kind, value, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.current
        if token.kind != kind:
            found = "end of expression" if token.kind == "end" else repr(token.text)
            raise ExpressionError(f"expected {what}, found {found}", token.pos)
        return self.advance()

    def parse(self) -> Expression:
        expr = self.or_expr()
        if self.current.kind != "end":
            raise ExpressionError(f"unexpected {self.current.text!r}", self.current.pos)
        return expr

    def or_expr(self) -> Expression:
        operands = [self.and_expr()]
        while self.current.kind == "or":
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self) -> Expression:
        operands = [self.not_expr()]
        while self.current.kind == "and":
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def not_expr(self) -> Expression:
        if self.current.kind == "not":
            token = self.advance()
            self.depth += 1
            if self.depth > 50:
                raise ExpressionError("expression nested too deeply", token.pos)
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand)
        return self.comparison()

    def comparison(self) -> Expression:
        left = self.operand()
        token = self.current
        op: Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]
        if token.kind == "op":
            op = token.text  # type: ignore[assignment]  # the regex admits only these six
            self.advance()
        elif token.kind == "in":
            op = "in"
            self.advance()
        elif token.kind == "not" and self.tokens[self.index + 1].kind == "in":
            op = "not in"
            self.advance()
            self.advance()
        else:
            return left
        right = self.operand()
        if op in ("in", "not in") and isinstance(right, Lit) and not isinstance(right.value, str):
            raise ExpressionError("'in' needs a list [..] or a string on its right", token.pos)
        return Compare(op, left, right)

    def literal(self) -> LiteralValue:
        token = self.current
        if token.kind == "number":
            self.advance()
            return Decimal(token.text)
        if token.kind == "string":
            self.advance()
            return _unquote(token.text)
        if token.kind in ("true", "false"):
            self.advance()
            return token.kind == "true"
        if token.kind == "null":
            self.advance()
            return None
        found = "end of expression" if token.kind == "end" else repr(token.text)
        raise ExpressionError(f"expected a literal, found {found}", token.pos)

    def operand(self) -> Expression:
        token = self.current
        if token.kind == "name":
            self.advance()
            return Var(token.text)
        if token.kind == "(":
            self.advance()
            self.depth += 1
            if self.depth > 50:
                raise ExpressionError("expression nested too deeply", token.pos)
            inner = self.or_expr()
            self.depth -= 1
            self.expect(")", "')'")
            return inner
        if token.kind == "[":
            self.advance()
            items: list[LiteralValue] = []
            if self.current.kind != "]":
                items.append(self.literal())
                while self.current.kind == ",":
                    self.advance()
                    items.append(self.literal())
            self.expect("]", "',' or ']'")
            return ListLit(tuple(items))
        if token.kind in ("number", "string", "true", "false", "null"):
            return Lit(self.literal())
        found = "end of expression" if token.kind == "end" else repr(token.text)
        raise ExpressionError(f"expected a variable or a literal, found {found}", token.pos)


def variable_tokens(text: str) -> list[tuple[str, int]]:
    """``(name, 0-based offset)`` of every variable reference in an expression."""
    return [(t.text, t.pos) for t in _tokenize(text) if t.kind == "name"]


def parse_expression(text: str) -> Expression:
    """Parse a branch condition; raises :class:`ExpressionError` with the offending position."""
    if not isinstance(text, str):
        raise ExpressionError("an expression must be a string", 0)
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", 0)
    if not text.strip():
        raise ExpressionError("empty expression", 0)
    return _Parser(text).parse()
