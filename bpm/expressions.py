"""Safe evaluation of the expressions found in uploaded BPMN.

Anyone allowed to upload a process definition controls its gateway conditions, timer expressions and
multi-instance expressions. SpiffWorkflow's default script engine hands those strings to Python's
``eval`` with full builtins, so an upload could run ``__import__('os').system(...)`` as the server.
This module is the only place such expressions are evaluated, and nothing here reaches ``eval`` or
``exec``:

* ``check_expression`` parses an expression and accepts only a small Python subset (literals,
  variables, arithmetic, comparisons, boolean logic, subscripts, a whitelist of functions and a few
  read-only ``str``/``list``/``dict`` methods). It runs at deploy time so problems surface early.
* ``evaluate`` re-checks (cached) and interprets the parsed tree with simpleeval, with bounded
  operators so that ``9**9**9`` or ``'x' * 10**9`` fail fast instead of eating the machine. It also
  reports which variables were read, for the decision trace ("amount=600000").
* ``check_script`` / ``run_script`` implement the restricted script mode: a script is a list of
  ``name = expr``, ``name += expr`` (and ``-= *= /= //= %=``) and ``print(...)`` statements, each
  expression checked and evaluated exactly like a condition; printed text is returned, never written.
* ``translate_camunda`` turns Camunda/JUEL ``${...}`` expressions into the Python subset.
* ``normalize_timer`` turns timer definitions (bare ISO-8601 literals, ``${...}``, quoted literals,
  variable names) into expressions that SpiffWorkflow's timer events can evaluate.
"""

from __future__ import annotations

import ast
import functools
import re
import threading
import types
import warnings
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import simpleeval
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition


class ExpressionError(ValueError):
    """An expression is unsafe, cannot be parsed, or failed while being evaluated."""


# --------------------------------------------------------------------------------------------------
# Limits

MAX_EXPRESSION_LENGTH = 10_000
MAX_SEQUENCE_LENGTH = simpleeval.MAX_STRING_LENGTH  # elements (or characters) a repetition may build
MAX_POWER_BITS = 100_000  # an int ** int result may have at most this many bits (~30,000 digits)
MAX_ROUND_DIGITS = 100

# --------------------------------------------------------------------------------------------------
# What an expression may use


def _bounded_round(number, ndigits=None):
    """round(), but refusing the huge ``ndigits`` that make ``round(5, -10**9)`` compute 10**10**9."""
    if ndigits is None:
        return round(number)
    if not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS:
        raise ExpressionError(f"round() digits must be an integer between -{MAX_ROUND_DIGITS} and "
                              f"{MAX_ROUND_DIGITS}")
    return round(number, ndigits)


ALLOWED_FUNCTIONS: dict[str, Any] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "round": _bounded_round,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "sum": sum,
    "any": any,
    "all": all,
    "sorted": sorted,
    "list": list,
    "dict": dict,
    "set": set,
    "tuple": tuple,
}

# Read-only methods that may be called, per receiver type (checked by name at deploy time and by
# receiver type at run time).
_STR_METHODS = frozenset(
    {"lower", "upper", "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "count", "index"}
)
_SEQUENCE_METHODS = frozenset({"count", "index"})
_DICT_METHODS = frozenset({"get", "keys", "values", "items"})
SAFE_METHODS = _STR_METHODS | _SEQUENCE_METHODS | _DICT_METHODS
_METHODS_BY_TYPE = {str: _STR_METHODS, list: _SEQUENCE_METHODS, tuple: _SEQUENCE_METHODS, dict: _DICT_METHODS}

_ALLOWED_OPERATORS = (
    ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Invert,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.LShift, ast.RShift, ast.BitOr, ast.BitXor, ast.BitAnd,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
)
_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Compare, ast.Call, ast.keyword,
    ast.Constant, ast.Name, ast.Load, ast.Attribute, ast.Subscript, ast.Slice,
    ast.Dict, ast.Set, ast.List, ast.Tuple, ast.JoinedStr, ast.FormattedValue,
    *_ALLOWED_OPERATORS,
)
_REJECTED_NODE_MESSAGES = {
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Starred: "starred (*) unpacking is not allowed",
    ast.MatMult: "the @ operator is not allowed",
}


# --------------------------------------------------------------------------------------------------
# Bounded operators (used at run time and to fold constants at deploy time)


def _element_count(value, budget: int) -> int:
    """Characters/elements in ``value`` counting nested containers; stops counting past ``budget``."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if not isinstance(value, (list, tuple, set, frozenset, dict)):
        return 1
    total = len(value)
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        if total > budget:
            break
        if isinstance(item, (str, bytes, list, tuple, set, frozenset, dict)):
            total += _element_count(item, budget - total)
    return total


def _check_repetition(sequence, times) -> None:
    if not isinstance(sequence, (str, bytes, list, tuple)) or not isinstance(times, int) or times <= 0:
        return
    if len(sequence) * times > MAX_SEQUENCE_LENGTH:
        raise ExpressionError(f"repeating a sequence {times} times makes it longer than "
                              f"{MAX_SEQUENCE_LENGTH} elements")
    if isinstance(sequence, (list, tuple)):
        budget = MAX_SEQUENCE_LENGTH // times
        if _element_count(sequence, budget) > budget:
            raise ExpressionError(f"repeating a nested sequence {times} times is too large")


def _bounded_multiply(left, right):
    _check_repetition(left, right)
    _check_repetition(right, left)
    return left * right


def _bounded_power(base, exponent):
    is_int = isinstance(base, int) and isinstance(exponent, int)
    if is_int and exponent > 0 and max(base.bit_length(), 1) * exponent > MAX_POWER_BITS:
        raise ExpressionError(f"{base} ** {exponent} is too large")
    return base**exponent


def _bounded_modulo(left, right):
    if isinstance(left, (str, bytes)):
        raise ExpressionError("%-formatting of strings is not allowed")
    return left % right


_OPERATORS = dict(simpleeval.DEFAULT_OPERATORS)
_OPERATORS.update({ast.Mult: _bounded_multiply, ast.Pow: _bounded_power, ast.Mod: _bounded_modulo})
_CONSTANT_FOLD_ERRORS = (ExpressionError, simpleeval.InvalidExpression, OverflowError, MemoryError)


class _NotConstant(Exception):
    """Raised while folding a subtree that depends on variables."""


def _fold_constant(node: ast.AST):
    """Value of a subtree made only of literals, computed with the bounded operators."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_fold_constant(element) for element in node.elts]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        operand = _fold_constant(node.operand)
        try:
            return _OPERATORS[type(node.op)](operand)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise _NotConstant from exc
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _fold_constant(node.left), _fold_constant(node.right)
        try:
            return _OPERATORS[type(node.op)](left, right)
        except _CONSTANT_FOLD_ERRORS:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise _NotConstant from exc
    raise _NotConstant


# --------------------------------------------------------------------------------------------------
# Static check


class _SafetyChecker:
    """Walks a parsed expression and raises ExpressionError at the first construct not allowed."""

    def visit(self, node: ast.AST) -> None:
        node_type = type(node)
        if node_type in _REJECTED_NODE_MESSAGES:
            raise ExpressionError(_REJECTED_NODE_MESSAGES[node_type])
        if not isinstance(node, _ALLOWED_NODES):
            raise ExpressionError(f"{node_type.__name__} is not allowed in expressions")
        handler = getattr(self, f"visit_{node_type.__name__}", None)
        if handler is not None:
            handler(node)
        else:
            self.visit_children(node)

    def visit_children(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            raise ExpressionError(f"name '{node.id}' is not allowed")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.visit(node.value)
        self.check_attribute_name(node.attr)
        raise ExpressionError(f"attribute access '.{node.attr}' is not supported: "
                              f"use x['{node.attr}'] to read a dictionary key")

    @staticmethod
    def check_attribute_name(name: str) -> None:
        if name.startswith("_") or name in simpleeval.DISALLOW_METHODS:
            raise ExpressionError(f"attribute '{name}' is not allowed")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in ALLOWED_FUNCTIONS:
                raise ExpressionError(f"function '{func.id}' is not allowed")
        elif isinstance(func, ast.Attribute):
            self.visit(func.value)
            self.check_attribute_name(func.attr)
            if func.attr not in SAFE_METHODS:
                raise ExpressionError(f"method '{func.attr}' is not allowed")
        else:
            self.visit(func)
            raise ExpressionError("only whitelisted functions and methods may be called")
        for argument in node.args:
            self.visit(argument)
        for keyword in node.keywords:
            if keyword.arg is None:
                raise ExpressionError("keyword unpacking (**) is not allowed")
            self.visit(keyword.value)

    def visit_Dict(self, node: ast.Dict) -> None:
        if any(key is None for key in node.keys):
            raise ExpressionError("dictionary unpacking (**) is not allowed")
        self.visit_children(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> None:
        if node.format_spec is not None:
            raise ExpressionError("format specifications in f-strings are not allowed")
        self.visit(node.value)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, (str, bytes)) and len(node.value) > MAX_SEQUENCE_LENGTH:
            raise ExpressionError(f"literal longer than {MAX_SEQUENCE_LENGTH} characters")

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self.visit_children(node)
        if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
                and isinstance(node.left.value, (str, bytes)):
            raise ExpressionError("%-formatting of strings is not allowed")
        if isinstance(node.op, ast.Pow):
            self.check_exponent(node.right)
        self.check_constant_size(node)

    @staticmethod
    def check_exponent(exponent_node: ast.AST) -> None:
        try:
            exponent = _fold_constant(exponent_node)
        except _NotConstant:
            return
        except _CONSTANT_FOLD_ERRORS as exc:
            raise ExpressionError(f"constant too large: {exc}") from None
        if isinstance(exponent, (int, float)) and exponent > MAX_POWER_BITS:
            raise ExpressionError(f"exponent {exponent} is too large")

    @staticmethod
    def check_constant_size(node: ast.BinOp) -> None:
        try:
            _fold_constant(node)
        except _NotConstant:
            return
        except _CONSTANT_FOLD_ERRORS as exc:
            raise ExpressionError(f"constant too large: {exc}") from None


def _parse(expr: str) -> ast.Expression:
    if not isinstance(expr, str):
        raise ExpressionError(f"expression must be a string, not {type(expr).__name__}")
    text = expr.strip()
    if not text:
        raise ExpressionError("expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escape sequences: same result in every setup
            return ast.parse(text, mode="eval")
    except SyntaxError as exc:
        where = f"column {exc.offset}" if exc.offset and exc.lineno == 1 else "the end of the expression"
        raise ExpressionError(f"invalid syntax at {where}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"cannot parse expression: {exc}") from None


@functools.lru_cache(maxsize=4096)
def _checked_tree(expr: str) -> ast.Expression:
    """Parse and check once per distinct expression string; the tree is never mutated afterwards."""
    tree = _parse(expr)
    try:
        _SafetyChecker().visit(tree)
    except RecursionError:
        raise ExpressionError("expression is nested too deeply") from None
    return tree


def check_expression(expr: str) -> None:
    """Raise ExpressionError unless ``expr`` is a safe expression in the supported Python subset."""
    _checked_tree(expr)


# --------------------------------------------------------------------------------------------------
# Evaluation


class _RecordingNames:
    """The variables an expression can see; remembers every one it actually looked up."""

    __slots__ = ("variables", "read")

    def __init__(self, variables: Mapping[str, Any]):
        self.variables = variables
        self.read: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        value = self.variables[name]
        self.read[name] = value
        return value


class _Evaluator(simpleeval.EvalWithCompoundTypes):
    """simpleeval with our operators, functions and per-type method whitelist.

    Every node was already checked statically, so the per-node scan of results is kept shallow: the
    stock check walks whole containers on every variable lookup, which is slow for large task data.
    """

    def __init__(self):
        super().__init__(operators=_OPERATORS, functions=dict(ALLOWED_FUNCTIONS), names={},
                         allowed_attrs=_METHODS_BY_TYPE)

    def _check_disallowed_items(self, item):
        if type(item) in simpleeval._PRIMITIVE_TYPES:
            return
        if isinstance(item, types.ModuleType):
            raise simpleeval.FeatureNotAvailable("Sorry, modules are not allowed")
        if callable(item) and item in simpleeval.DISALLOW_FUNCTIONS:
            raise simpleeval.FeatureNotAvailable("This function is forbidden")


_per_thread = threading.local()


def _thread_evaluator() -> _Evaluator:
    """One evaluator per thread: building one costs several times more than a typical evaluation."""
    evaluator = getattr(_per_thread, "evaluator", None)
    if evaluator is None:
        evaluator = _per_thread.evaluator = _Evaluator()
    return evaluator


def evaluate(expr: str, variables: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Evaluate ``expr`` against ``variables``; return (result, {name: value} of variables read).

    Values in names_read are the caller's objects, not copies. Any failure, including a runtime error
    such as a division by zero or a missing dictionary key, is raised as ExpressionError.
    """
    tree = _checked_tree(expr)
    names = _RecordingNames(variables)
    evaluator = _thread_evaluator()
    evaluator.names = names
    try:
        result = evaluator.eval(expr, previously_parsed=tree.body)
    except ExpressionError:
        raise
    except simpleeval.NameNotDefined as exc:
        raise ExpressionError(f"name '{exc.name}' is not defined") from None
    except simpleeval.InvalidExpression as exc:
        raise ExpressionError(f"cannot evaluate '{expr.strip()}': {exc}") from exc
    except RecursionError:
        raise ExpressionError(f"cannot evaluate '{expr.strip()}': nested too deeply") from None
    except Exception as exc:  # a runtime error in the expression itself (TypeError, KeyError, ...)
        raise ExpressionError(f"cannot evaluate '{expr.strip()}': {type(exc).__name__}: {exc}") from exc
    finally:
        evaluator.names = {}
    return result, names.read


# --------------------------------------------------------------------------------------------------
# Restricted scripts

MAX_SCRIPT_LENGTH = 50_000
MAX_SCRIPT_STATEMENTS = 200
MAX_PRINT_LENGTH = 1_000  # characters kept of one print() line
MAX_PRINT_LINES = 50  # print() lines kept per script run

# Augmented assignments a restricted script may use: `name op= expression` runs as `name = name op (expression)`.
_AUGMENTED_OPERATORS: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
}
_SCRIPT_FORMS = ("only 'name = expression', 'name += expression' (also -=, *=, /=, //=, %=) and print(...) "
                 "statements are allowed in restricted scripts")


class ScriptResult:
    """What a restricted script did: the variables it assigned and the lines it printed (bounded)."""

    __slots__ = ("assigned", "printed", "dropped_lines")

    def __init__(self):
        self.assigned: dict[str, Any] = {}
        self.printed: list[str] = []
        self.dropped_lines = 0


def _statement_error(statement: ast.stmt, message: str) -> ExpressionError:
    return ExpressionError(f"line {statement.lineno}: {message}")


def _checked_part(statement: ast.stmt, node: ast.AST, text: str | None = None) -> str:
    """The source of one expression of a statement, checked like any uploaded expression."""
    source = text if text is not None else ast.unparse(node)
    try:
        check_expression(source)
    except ExpressionError as exc:
        raise _statement_error(statement, str(exc)) from None
    return source


def _target_name(statement: ast.stmt, target: ast.AST) -> str:
    if not isinstance(target, ast.Name):
        raise _statement_error(statement, f"only a plain variable name can be assigned, not "
                                          f"{ast.unparse(target)!r}")
    if target.id.startswith("_"):
        raise _statement_error(statement, f"names starting with '_' are not allowed ('{target.id}')")
    return target.id


def _compile_print(statement: ast.stmt, call: ast.Call) -> tuple:
    if any(isinstance(argument, ast.Starred) for argument in call.args):
        raise _statement_error(statement, _REJECTED_NODE_MESSAGES[ast.Starred])
    arguments = [_checked_part(statement, argument) for argument in call.args]
    separator = None
    for keyword in call.keywords:
        if keyword.arg != "sep":
            shown = "**" if keyword.arg is None else f"{keyword.arg}="
            raise _statement_error(statement, f"print() takes positional arguments and sep= only, not {shown}")
        separator = _checked_part(statement, keyword.value)
    return ("print", tuple(arguments), separator)


def _compile_statement(statement: ast.stmt) -> tuple | None:
    if isinstance(statement, ast.Pass):
        return None
    if isinstance(statement, ast.Assign):
        if len(statement.targets) != 1:
            raise _statement_error(statement, "chained assignments (a = b = ...) are not allowed")
        name = _target_name(statement, statement.targets[0])
        return ("assign", name, _checked_part(statement, statement.value))
    if isinstance(statement, ast.AugAssign):
        name = _target_name(statement, statement.target)
        symbol = _AUGMENTED_OPERATORS.get(type(statement.op))
        if symbol is None:
            written = ast.unparse(ast.AugAssign(ast.Name("x"), statement.op, ast.Constant(1))).split()[1]
            raise _statement_error(statement, f"augmented assignment '{written}' is not allowed "
                                              "(only +=, -=, *=, /=, //=, %=)")
        text = f"{name} {symbol} ({ast.unparse(statement.value)})"
        return ("assign", name, _checked_part(statement, statement.value, text))
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call) \
            and isinstance(statement.value.func, ast.Name) and statement.value.func.id == "print":
        return _compile_print(statement, statement.value)
    raise _statement_error(statement, f"{_SCRIPT_FORMS}, not {_describe_statement(statement)}")


def _describe_statement(statement: ast.stmt) -> str:
    if isinstance(statement, ast.Expr):
        if isinstance(statement.value, ast.Call):
            return f"a call of '{ast.unparse(statement.value.func)}'"
        return "a bare expression"
    kind = type(statement).__name__
    return f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind} statement"


@functools.lru_cache(maxsize=1024)
def _compiled_script(script: str) -> tuple:
    """Parse and check a script once: a tuple of ('assign', name, expression) / ('print', args, sep) steps."""
    if not isinstance(script, str):
        raise ExpressionError(f"a script must be a string, not {type(script).__name__}")
    if len(script) > MAX_SCRIPT_LENGTH:
        raise ExpressionError(f"script longer than {MAX_SCRIPT_LENGTH} characters")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = ast.parse(script, mode="exec")
    except SyntaxError as exc:
        raise ExpressionError(f"line {exc.lineno or 1}: invalid syntax: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"cannot parse script: {exc}") from None
    if len(module.body) > MAX_SCRIPT_STATEMENTS:
        raise ExpressionError(f"script has more than {MAX_SCRIPT_STATEMENTS} statements")
    try:
        steps = tuple(step for step in map(_compile_statement, module.body) if step is not None)
    except RecursionError:
        raise ExpressionError("script is nested too deeply") from None
    return steps


def check_script(script: str) -> None:
    """Raise ExpressionError (naming the line) unless every statement of ``script`` is allowed.

    Allowed: ``name = expression``, ``name op= expression`` for + - * / // %, ``print(expression, ...)``
    (with an optional ``sep=``) and ``pass``; every expression must pass ``check_expression``.
    """
    _compiled_script(script)


def _bounded_text(text: str) -> str:
    if len(text) <= MAX_PRINT_LENGTH:
        return text
    return f"{text[:MAX_PRINT_LENGTH]}... ({len(text) - MAX_PRINT_LENGTH} more characters)"


def _printable(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, set, frozenset, dict)) \
            and _element_count(value, MAX_SEQUENCE_LENGTH) > MAX_SEQUENCE_LENGTH:
        return f"<{type(value).__name__} too large to print>"
    return str(value)


def run_script(script: str, variables: dict[str, Any]) -> ScriptResult:
    """Run a restricted script against ``variables`` (updated in place with each assignment).

    Nothing reaches ``exec``: every statement is one of the checked forms and every expression runs in
    the same bounded evaluator as conditions. ``print`` never writes anywhere: its text (each line cut
    at MAX_PRINT_LENGTH characters, at most MAX_PRINT_LINES lines) is returned for the instance history.
    """
    result = ScriptResult()
    for step in _compiled_script(script):
        if step[0] == "assign":
            _, name, expression = step
            value, _ = evaluate(expression, variables)
            variables[name] = value
            result.assigned[name] = value
            continue
        _, arguments, separator = step
        sep = " " if separator is None else evaluate(separator, variables)[0]
        if sep is not None and not isinstance(sep, str):
            raise ExpressionError(f"print(): sep must be a string, not {type(sep).__name__}")
        values = [_printable(evaluate(argument, variables)[0]) for argument in arguments]
        if len(result.printed) >= MAX_PRINT_LINES:
            result.dropped_lines += 1
            continue
        result.printed.append(_bounded_text((" " if sep is None else sep).join(values)))
    return result


# --------------------------------------------------------------------------------------------------
# Camunda / JUEL translation

_WRAPPED_RE = re.compile(r"^[$#]\{(?P<body>.*)\}$", re.DOTALL)
_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!()\[\].,?:])
    """,
    re.VERBOSE | re.DOTALL,
)
_KEYWORD_OPERATORS = {
    "and": "&&", "or": "||", "not": "!", "eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=",
    "ge": ">=", "div": "/", "mod": "%",
}
_LITERAL_KEYWORDS = {"true": "True", "false": "False", "null": "None"}
_UNSUPPORTED_KEYWORDS = {"instanceof"}

# Python precedence of the text we emit (higher binds tighter).
_P_TERNARY, _P_OR, _P_AND, _P_NOT, _P_COMPARE, _P_ADD, _P_MUL, _P_UNARY, _P_ATOM = range(1, 10)


def _tokenize_juel(body: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(body):
        match = _TOKEN_RE.match(body, position)
        if match is None:
            raise ExpressionError(f"unsupported character {body[position]!r} at offset {position} "
                                  f"in expression '{body}'")
        position = match.end()
        kind = match.lastgroup
        text = match.group()
        if kind == "space":
            continue
        if kind == "ident" and text in _KEYWORD_OPERATORS:
            kind, text = "op", _KEYWORD_OPERATORS[text]
        elif kind == "ident" and text == "empty":
            kind = "op"
        tokens.append((kind, text))
    return tokens


def _juel_string_to_python(lexeme: str) -> str:
    """Keep the literal as written unless it has escapes, whose meaning differs between EL and Python."""
    if "\\" not in lexeme:
        return lexeme
    decoded = re.sub(r"\\(.)", r"\1", lexeme[1:-1], flags=re.DOTALL)
    return repr(decoded)


class _JuelTranslator:
    """Recursive-descent parser for the JUEL expression language that emits our Python subset.

    Each parse method returns (python_text, precedence) so that parentheses are added only where
    Python would otherwise group differently (e.g. JUEL ``!a == b`` is ``(not a) == b``).
    """

    def __init__(self, body: str):
        self.body = body
        self.tokens = _tokenize_juel(body)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def accept(self, *ops: str) -> str | None:
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] in ops:
            self.index += 1
            return token[1]
        return None

    def expect(self, op: str) -> None:
        if self.accept(op) is None:
            found = self.peek()
            raise ExpressionError(f"expected '{op}' but found {found[1] if found else 'the end'!r} "
                                  f"in expression '{self.body}'")

    @staticmethod
    def wrap(part: tuple[str, int], minimum: int) -> str:
        text, precedence = part
        return text if precedence >= minimum else f"({text})"

    def translate(self) -> str:
        if not self.tokens:
            raise ExpressionError("expression is empty")
        text, _ = self.ternary()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in expression '{self.body}'")
        return text

    def ternary(self) -> tuple[str, int]:
        condition = self.logical_or()
        if self.accept("?") is None:
            return condition
        when_true = self.ternary()
        self.expect(":")
        when_false = self.ternary()
        return (f"{self.wrap(when_true, _P_TERNARY + 1)} if {self.wrap(condition, _P_TERNARY + 1)} "
                f"else {self.wrap(when_false, _P_TERNARY)}", _P_TERNARY)

    def binary_level(self, operand, operators: dict[str, str], precedence: int) -> tuple[str, int]:
        left = operand()
        while (op := self.accept(*operators)) is not None:
            right = operand()
            left = (f"{self.wrap(left, precedence)} {operators[op]} {self.wrap(right, precedence + 1)}",
                    precedence)
        return left

    def logical_or(self):
        return self.binary_level(self.logical_and, {"||": "or"}, _P_OR)

    def logical_and(self):
        return self.binary_level(self.equality, {"&&": "and"}, _P_AND)

    def equality(self):
        # Comparison operands are wrapped at _P_ADD so that Python never chains comparisons.
        left = self.relational()
        while (op := self.accept("==", "!=")) is not None:
            right = self.relational()
            left = (f"{self.wrap(left, _P_ADD)} {op} {self.wrap(right, _P_ADD)}", _P_COMPARE)
        return left

    def relational(self):
        left = self.additive()
        while (op := self.accept("<", ">", "<=", ">=")) is not None:
            right = self.additive()
            left = (f"{self.wrap(left, _P_ADD)} {op} {self.wrap(right, _P_ADD)}", _P_COMPARE)
        return left

    def additive(self):
        return self.binary_level(self.multiplicative, {"+": "+", "-": "-"}, _P_ADD)

    def multiplicative(self):
        return self.binary_level(self.unary, {"*": "*", "/": "/", "%": "%"}, _P_MUL)

    def unary(self) -> tuple[str, int]:
        if self.accept("!") is not None:
            return f"not {self.wrap(self.unary(), _P_ADD)}", _P_NOT
        if self.accept("empty") is not None:
            return f"(not {self.wrap(self.unary(), _P_ADD)})", _P_ATOM
        if self.accept("-") is not None:
            return f"-{self.wrap(self.unary(), _P_UNARY)}", _P_UNARY
        return self.postfix()

    def postfix(self) -> tuple[str, int]:
        text, precedence = self.primary()
        dotted = text if precedence == _P_ATOM else "expression"
        while True:
            if self.accept(".") is not None:
                token = self.peek()
                if token is None or token[0] != "ident":
                    raise ExpressionError(f"expected a property name after '.' in expression '{self.body}'")
                self.index += 1
                dotted = f"{dotted}.{token[1]}"
                text = f"{self.wrap((text, precedence), _P_ATOM)}[{token[1]!r}]"
            elif self.accept("[") is not None:
                key, _ = self.ternary()
                self.expect("]")
                dotted = f"{dotted}[...]"
                text = f"{self.wrap((text, precedence), _P_ATOM)}[{key}]"
            elif self.accept("(") is not None:
                raise ExpressionError(f"method calls are not supported: '{dotted}(...)' in expression "
                                      f"'{self.body}' (only variables, literals and operators are)")
            else:
                return text, precedence
            precedence = _P_ATOM

    def is_el_function_call(self) -> bool:
        """``prefix:name(`` right after an identifier (as opposed to the ``:`` of ``a ? b : c``)."""
        following = self.tokens[self.index:self.index + 3]
        return (len(following) == 3 and following[0] == ("op", ":") and following[1][0] == "ident"
                and following[2] == ("op", "("))

    def primary(self) -> tuple[str, int]:
        token = self.peek()
        if token is None:
            raise ExpressionError(f"expression '{self.body}' ends unexpectedly")
        kind, text = token
        self.index += 1
        if kind == "op" and text == "(":
            inner = self.ternary()
            self.expect(")")
            return inner
        if kind == "string":
            return _juel_string_to_python(text), _P_ATOM
        if kind == "number":
            return text, _P_ATOM
        if kind == "ident":
            if text in _LITERAL_KEYWORDS:
                return _LITERAL_KEYWORDS[text], _P_ATOM
            if text in _UNSUPPORTED_KEYWORDS:
                raise ExpressionError(f"'{text}' is not supported in expression '{self.body}'")
            if self.is_el_function_call():
                function_name = f"{text}:{self.tokens[self.index + 1][1]}"
                raise ExpressionError(f"EL functions are not supported: '{function_name}(...)' in "
                                      f"expression '{self.body}'")
            return text, _P_ATOM
        raise ExpressionError(f"unexpected {text!r} in expression '{self.body}'")


def _unwrap_el(text: str) -> str | None:
    """Body of a single ``${...}``/``#{...}`` expression, or None when the text is not wrapped."""
    match = _WRAPPED_RE.match(text)
    if match is None:
        return None
    body = match.group("body")
    if "${" in body or "#{" in body:
        inner_tokens = _strip_el_strings(body)
        if "${" in inner_tokens or "#{" in inner_tokens:
            raise ExpressionError(f"composite expressions with several ${{...}} parts are not supported: "
                                  f"'{text}'")
    return body


def _strip_el_strings(body: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", body, flags=re.DOTALL)


def translate_camunda(text: str) -> str:
    """Translate a Camunda/JUEL ``${...}``/``#{...}`` expression into the supported Python subset.

    ``&& || ! eq ne lt gt le ge and or not div mod`` become Python operators, ``true/false/null``
    become ``True/False/None``, ``empty x`` becomes ``(not x)`` and property access ``order.amount``
    becomes ``order['amount']`` (process variables are plain dictionaries). Method and function calls
    (``execution.getVariable('x')``, ``bean.method()``) cannot be translated and raise
    ExpressionError. Text that is not wrapped in ``${...}``/``#{...}`` is returned stripped.
    """
    stripped = text.strip()
    body = _unwrap_el(stripped)
    if body is None:
        return stripped
    translated = _JuelTranslator(body).translate()
    try:
        check_expression(translated)
    except ExpressionError as exc:
        raise ExpressionError(f"'{stripped}' translates to '{translated}', which is not allowed: {exc}") \
            from None
    return translated


# --------------------------------------------------------------------------------------------------
# Timers

TIMER_KINDS = ("timeDuration", "timeDate", "timeCycle")

_NUMBER = r"\d+(?:[.,]\d+)?"
_DURATION_RE = re.compile(
    rf"^P(?=[\dT])(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?=\d)(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?$",
    re.IGNORECASE,
)
_CYCLE_RE = re.compile(r"^R(?P<count>\d*)/(?P<rest>.+)$", re.IGNORECASE)
_IDENTIFIER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Text that is clearly meant as an ISO literal (validated as such, never taken for a variable name).
_LOOKS_ISO_RE = re.compile(r"^(?:PT?$|PT?\d|R\d*/|\d)", re.IGNORECASE)
_CRON_FIELD_RE = re.compile(r"^[0-9*?/,#LW-]+$|^[A-Z]{3}(?:[-,][A-Z]{3})*$", re.IGNORECASE)
_CRON_MESSAGE = "is a cron expression; only ISO-8601 repeating intervals (R3/PT1H) are supported"


def is_iso_duration(value: Any) -> bool:
    """True for an ISO-8601 duration the timer engine accepts (PT4H, P1D, P3DT2H, PT0.2S, P2W)."""
    if not isinstance(value, str) or not _DURATION_RE.match(value):
        return False
    try:
        TimerEventDefinition.parse_iso_duration(value)
    except Exception:  # the engine's parser raises a bare Exception
        return False
    return True


def is_iso_datetime(value: Any) -> bool:
    """True for an ISO-8601 date/time (2026-12-01T09:00:00Z, with an offset, or local)."""
    if not isinstance(value, str) or not value[:4].isdigit():
        return False
    try:
        return isinstance(TimerEventDefinition.parse_time_or_duration(value), datetime)
    except Exception:
        return False


def is_iso_cycle(value: Any) -> bool:
    """True for an ISO-8601 repeating interval: R3/PT1H, R/PT1H, R2/2026-12-01T09:00:00Z/PT5M."""
    if not isinstance(value, str):
        return False
    match = _CYCLE_RE.match(value)
    if match is None:
        return False
    parts = match.group("rest").split("/")
    if len(parts) > 2 or not all(is_iso_duration(p) or is_iso_datetime(p) for p in parts):
        return False
    try:
        TimerEventDefinition.parse_iso_recurring_interval(value)
    except Exception:
        return False
    return True


def is_cron(value: str) -> bool:
    """True for text shaped like a Quartz/Unix cron expression (5 to 7 space-separated fields)."""
    fields = value.split()
    return 5 <= len(fields) <= 7 and all(_CRON_FIELD_RE.match(field) for field in fields)


_ISO_CHECKS = {
    "timeDuration": (is_iso_duration, "an ISO-8601 duration such as PT4H or P3DT2H"),
    "timeDate": (is_iso_datetime, "an ISO-8601 date-time such as 2026-12-01T09:00:00Z"),
    "timeCycle": (is_iso_cycle, "an ISO-8601 repeating interval such as R3/PT1H"),
}


def _validate_iso_literal(value: str, kind: str, original: str) -> None:
    is_valid, expected = _ISO_CHECKS[kind]
    if not is_valid(value):
        raise ExpressionError(f"{kind} '{original}' is not {expected}")


def _quoted_literal(text: str) -> str | None:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, str) else None
    return None


def normalize_timer(text: str, kind: str) -> str:
    """Turn a timer definition into an expression SpiffWorkflow can evaluate to an ISO string.

    * a bare ISO-8601 literal (``PT4H``, ``R3/PT1H``, ``2026-12-01T09:00:00Z``) becomes ``"PT4H"``;
    * an already quoted literal (``"PT4H"`` or ``'PT4H'``) is validated and kept;
    * ``${...}``/``#{...}`` is translated with ``translate_camunda``;
    * a variable name, or any other expression passing ``check_expression``, is kept as is.

    Unbounded cycles (``R/PT1H``) are accepted: the engine repeats them until the owning task ends
    (a reminder on a user task), so on a start event they would fire forever. Cron expressions and
    malformed literals raise ExpressionError.
    """
    if kind not in _ISO_CHECKS:
        raise ExpressionError(f"unknown timer kind '{kind}' (expected one of {', '.join(TIMER_KINDS)})")
    stripped = (text or "").strip()
    if not stripped:
        raise ExpressionError(f"{kind} is empty")
    if is_cron(stripped):
        raise ExpressionError(f"{kind} '{stripped}' {_CRON_MESSAGE}")
    literal = _quoted_literal(stripped)
    if literal is not None:
        _validate_iso_literal(literal.strip(), kind, stripped)
        return stripped
    if _WRAPPED_RE.match(stripped):
        expression = translate_camunda(stripped)
        literal = _quoted_literal(expression)
        if literal is not None:
            _validate_iso_literal(literal.strip(), kind, stripped)
        return expression
    if _LOOKS_ISO_RE.match(stripped):
        _validate_iso_literal(stripped, kind, stripped)
        return f'"{stripped}"'
    if _IDENTIFIER_RE.match(stripped):
        check_expression(stripped)
        return stripped
    try:
        check_expression(stripped)
    except ExpressionError as exc:
        raise ExpressionError(f"{kind} '{stripped}' is neither an ISO-8601 value nor a valid expression: "
                              f"{exc}") from None
    return stripped
