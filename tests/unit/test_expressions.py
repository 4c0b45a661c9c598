"""The safe expression evaluator: hostile input never runs, and the supported subset behaves."""

from __future__ import annotations

import builtins
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from bpm import expressions
from bpm.expressions import (
    ExpressionError,
    check_expression,
    evaluate,
    is_cron,
    is_iso_cycle,
    is_iso_datetime,
    is_iso_duration,
    normalize_timer,
    translate_camunda,
)

# --------------------------------------------------------------------------------------------------
# Hostile expressions

HOSTILE = [
    ("__import__('os').system('id')", "function '__import__' is not allowed"),
    ("().__class__.__base__.__subclasses__()", "attribute '__class__' is not allowed"),
    ("open('/etc/passwd').read()", "function 'open' is not allowed"),
    ("exec('1')", "function 'exec' is not allowed"),
    ("eval('1')", "function 'eval' is not allowed"),
    ("getattr(x, 'y')", "function 'getattr' is not allowed"),
    ("globals()", "function 'globals' is not allowed"),
    ("locals()['x']", "function 'locals' is not allowed"),
    ("compile('1', 'f', 'eval')", "function 'compile' is not allowed"),
    ("type(x)", "function 'type' is not allowed"),
    ("lambda: 1", "lambda is not allowed"),
    ("(lambda: 1)()", "lambda is not allowed"),
    ("[x for x in y]", "comprehensions are not allowed"),
    ("{k: 1 for k in y}", "comprehensions are not allowed"),
    ("any(x for x in y)", "generator expressions are not allowed"),
    ("(a := 1)", "assignment expressions (:=) are not allowed"),
    ("len(*x)", "starred"),
    ("dict(**x)", "keyword unpacking"),
    ("{**x}", "dictionary unpacking"),
    ("x._secret", "attribute '_secret' is not allowed"),
    ("_private", "name '_private' is not allowed"),
    ("x.__class__", "attribute '__class__' is not allowed"),
    ("'{0.__class__}'.format(x)", "attribute 'format' is not allowed"),
    ("x.pop()", "method 'pop' is not allowed"),
    ("x.update(y)", "method 'update' is not allowed"),
    ("x.y", "attribute access '.y' is not supported"),
    ("x['a'].append(1)", "method 'append' is not allowed"),
    ("[x][0]()", "only whitelisted functions and methods may be called"),
    ("9**9**9", "too large"),
    ("2 ** 1000000", "too large"),
    ("'a' * 10**9", "too large"),
    ("[0] * 10**9", "too large"),
    ("'%0999999999d' % 1", "%-formatting"),
    ("f'{x:>999999999}'", "format specifications"),
    ("x @ y", "@ operator"),
    ("1 +", "invalid syntax"),
    ("", "empty"),
    ("'x' * 10 if", "invalid syntax"),
]


@pytest.mark.parametrize(("expr", "message"), HOSTILE, ids=[h[0] or "<empty>" for h in HOSTILE])
def test_hostile_expression_is_rejected_statically(expr, message):
    with pytest.raises(ExpressionError) as excinfo:
        check_expression(expr)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(("expr", "message"), HOSTILE, ids=[h[0] or "<empty>" for h in HOSTILE])
def test_hostile_expression_is_rejected_by_evaluate(expr, message):
    with pytest.raises(ExpressionError, match="."):
        evaluate(expr, {"x": {"a": []}, "y": [1, 2]})


def test_nothing_runs_for_hostile_expressions(monkeypatch, tmp_path):
    calls = []

    def record(name):
        def recorder(*args, **kwargs):
            calls.append((name, args))
            raise AssertionError(f"{name} must never be called")

        return recorder

    monkeypatch.setattr(os, "system", record("os.system"))
    monkeypatch.setattr(os, "popen", record("os.popen"))
    monkeypatch.setattr(subprocess, "Popen", record("subprocess.Popen"))
    marker = tmp_path / "marker"
    attempts = [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w').write('pwned')",
        f"().__class__.__base__.__subclasses__()[0]('{marker}')",
        f"exec(\"open('{marker}', 'w')\")",
        f"eval(\"__import__('os').system('touch {marker}')\")",
        "getattr(__builtins__, 'open')",
        "[c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == 'Popen']"
        f"[0]('touch {marker}')",
    ]
    real_eval, real_exec = builtins.eval, builtins.exec
    monkeypatch.setattr(builtins, "eval", record("eval"))
    monkeypatch.setattr(builtins, "exec", record("exec"))
    try:
        for attempt in attempts:
            with pytest.raises(ExpressionError):
                evaluate(attempt, {"x": 1})
    finally:
        monkeypatch.setattr(builtins, "eval", real_eval)
        monkeypatch.setattr(builtins, "exec", real_exec)
    assert calls == []
    assert not marker.exists()


@pytest.mark.parametrize(
    ("expr", "variables"),
    [
        ("x ** y", {"x": 4_000_000, "y": 4_000_000}),
        ("x ** 100000", {"x": 9}),
        ("s * n", {"s": "ab", "n": 10**9}),
        ("items * n", {"items": [1, 2], "n": 10**9}),
        ("[nested] * 3", {"nested": [[0] * 50_000]}),
        ("str([[1] * 100000] * 100000)", {}),
        ("round(5, -10**9)", {}),
        ("round(5, n)", {"n": -(10**9)}),
        ("template % value", {"template": "%0999999999d", "value": 1}),
    ],
)
def test_resource_bombs_are_refused_at_run_time(expr, variables):
    with pytest.raises(ExpressionError):
        evaluate(expr, variables)


def test_method_whitelist_is_checked_against_the_receiver_type():
    assert evaluate("d.get('a', 0)", {"d": {"a": 3}})[0] == 3
    with pytest.raises(ExpressionError):
        evaluate("s.get('a')", {"s": "text"})  # get is a dict method, not a str one
    with pytest.raises(ExpressionError):
        evaluate("str.lower('A')", {})  # calling through the type is not a whitelisted receiver


# --------------------------------------------------------------------------------------------------
# Supported subset and names_read


@pytest.mark.parametrize(
    ("expr", "variables", "expected"),
    [
        ("amount > 500000", {"amount": 600000}, True),
        ("amount > 500000 and region == 'EU'", {"amount": 600000, "region": "EU"}, True),
        ("not approved", {"approved": False}, True),
        ("x if x > 0 else -x", {"x": -4}, 4),
        ("order['lines'][0]['qty'] * 2", {"order": {"lines": [{"qty": 3}]}}, 6),
        ("len(items) >= 2", {"items": [1, 2]}, True),
        ("min(a, b) + max([a, b]) + abs(-1)", {"a": 1, "b": 5}, 7),
        ("round(price * 1.2, 2)", {"price": 10.005}, round(10.005 * 1.2, 2)),
        ("int('42') + float('0.5')", {}, 42.5),
        ("str(n) + '!'", {"n": 3}, "3!"),
        ("bool(x) and sum(values) == 6", {"x": 1, "values": [1, 2, 3]}, True),
        ("any(flags) and not all(flags)", {"flags": [True, False]}, True),
        ("sorted(names, key=len)", {"names": ["ccc", "a", "bb"]}, ["a", "bb", "ccc"]),
        ("list((1, 2)) + [3]", {}, [1, 2, 3]),
        ("dict(a=1)['a'] + len(set([1, 1])) + len(tuple('ab'))", {}, 4),
        ("name.lower().strip().startswith('vip')", {"name": " VIP Corp "}, True),
        ("email.endswith('@example.com')", {"email": "a@example.com"}, True),
        ("code.upper().split('-')", {"code": "ab-cd"}, ["AB", "CD"]),
        ("sorted(d.keys()) == ['a', 'b'] and sum(d.values()) == 3", {"d": {"a": 1, "b": 2}}, True),
        ("len(list(d.items()))", {"d": {"a": 1}}, 1),
        ("tags.count('x') + tags.index('y')", {"tags": ["x", "y", "x"]}, 3),
        ("status in ('open', 'pending')", {"status": "open"}, True),
        ("x is None", {"x": None}, True),
        ("s[::-1]", {"s": "abc"}, "cba"),
        ("f'{first} {last}'", {"first": "Ada", "last": "Lovelace"}, "Ada Lovelace"),
        ("2 ** 10", {}, 1024),
        ("10 % 3", {}, 1),
        ("True and not False and None is None", {}, True),
    ],
)
def test_supported_subset(expr, variables, expected):
    result, _ = evaluate(expr, variables)
    assert result == expected


def test_names_read_lists_each_variable_looked_up_with_its_value():
    variables = {"amount": 600000, "region": "EU", "unused": 1}
    result, names_read = evaluate("amount > 500000 and region == 'EU' and amount < 10**7", variables)
    assert result is True
    assert names_read == {"amount": 600000, "region": "EU"}


def test_names_read_follows_short_circuit_and_ignores_functions():
    result, names_read = evaluate("vip or amount > len(items)", {"vip": True, "amount": 1, "items": []})
    assert result is True
    assert names_read == {"vip": True}
    _, names_read = evaluate("sorted(names, key=len)", {"names": ["b"]})
    assert names_read == {"names": ["b"]}


def test_names_read_holds_the_callers_objects_without_copying():
    order = {"amount": 5}
    _, names_read = evaluate("order['amount'] > 1", {"order": order})
    assert names_read["order"] is order


def test_undefined_variable():
    with pytest.raises(ExpressionError, match=r"^name 'missing' is not defined$"):
        evaluate("missing > 1", {"present": 1})


@pytest.mark.parametrize("expr", ["1 / 0", "d['k']", "'a' + 1", "int('x')", "items[5]"])
def test_runtime_errors_become_expression_errors(expr):
    with pytest.raises(ExpressionError, match="cannot evaluate"):
        evaluate(expr, {"d": {}, "items": []})


def test_check_is_cached_per_expression_string():
    expr = "cache_probe_variable + 1"
    evaluate(expr, {"cache_probe_variable": 1})
    hits_before = expressions._checked_tree.cache_info().hits
    evaluate(expr, {"cache_probe_variable": 2})
    check_expression(expr)
    assert expressions._checked_tree.cache_info().hits == hits_before + 2


def test_evaluate_is_thread_safe():
    def run(n):
        return evaluate("n * 2 + offset", {"n": n, "offset": 1})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(400)))
    assert [r[0] for r in results] == [n * 2 + 1 for n in range(400)]
    assert all(r[1] == {"n": n, "offset": 1} for n, r in enumerate(results))



# --------------------------------------------------------------------------------------------------
# Camunda / JUEL translation

TRANSLATIONS = [
    ("${amount > 1000 && approved}", "amount > 1000 and approved"),
    ("#{a || !b}", "a or not b"),
    ("${a != b}", "a != b"),
    ("${!a}", "not a"),
    ("${x eq 'a' and y ne \"b\"}", "x == 'a' and y != \"b\""),
    ("${x lt 1 or y gt 2}", "x < 1 or y > 2"),
    ("${x le 1 && y ge 2}", "x <= 1 and y >= 2"),
    ("${not (a lt 1)}", "not (a < 1)"),
    ("${!a == b}", "(not a) == b"),
    ("${a < b == true}", "(a < b) == True"),
    ("${true}", "True"),
    ("${false || null == x}", "False or None == x"),
    ("${empty items}", "(not items)"),
    ("${!empty items}", "not (not items)"),
    ("${order.amount >= 500}", "order['amount'] >= 500"),
    ("${a.b.c[0]}", "a['b']['c'][0]"),
    ("${order['amount'] > 1}", "order['amount'] > 1"),
    ("${amount > 5 ? 'vp' : 'manager'}", "'vp' if amount > 5 else 'manager'"),
    ("${a div 2 mod 3}", "a / 2 % 3"),
    ("${-a + b * (c - d)}", "-a + b * (c - d)"),
    ("${approved == 'true'}", "approved == 'true'"),
    ("${note == 'a && b || !c eq d'}", "note == 'a && b || !c eq d'"),
    ("${note == \"it's\"}", "note == \"it's\""),
    ("${note == 'it\\'s'}", "note == \"it's\""),
    ("${label == 'x}'}", "label == 'x}'"),
    ("  ${ approved }  ", "approved"),
    ("amount > 5", "amount > 5"),
    ("  not wrapped && kept  ", "not wrapped && kept"),
]


@pytest.mark.parametrize(("text", "expected"), TRANSLATIONS)
def test_translate_camunda(text, expected):
    assert translate_camunda(text) == expected


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("${!a == b}", {"a": False, "b": True}, True),
        ("${empty items || items[0] eq 'x'}", {"items": []}, True),
        ("${order.amount gt 1000 && !vip}", {"order": {"amount": 1500}, "vip": False}, True),
        ("${a ? b : c ? d : e}", {"a": False, "b": 1, "c": True, "d": 2, "e": 3}, 2),
    ],
)
def test_translated_expressions_keep_juel_semantics(text, variables, expected):
    assert evaluate(translate_camunda(text), variables)[0] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${execution.getVariable('x')}", "method calls are not supported: 'execution.getVariable(...)'"),
        ("${bean.method()}", "method calls are not supported: 'bean.method(...)'"),
        ("${dateTime().plusDays(2).toDate()}", "method calls are not supported: 'dateTime(...)'"),
        ("${fn:contains(a, 'b')}", "EL functions are not supported: 'fn:contains(...)'"),
        ("${a} and ${b}", "composite expressions"),
        ("${}", "empty"),
        ("${a = 1}", "unsupported character '='"),
        ("${a instanceof b}", "instanceof"),
        ("${__class__}", "not allowed"),
        ("${in}", "not allowed"),
        ("${(a}", "expected ')'"),
    ],
)
def test_translate_camunda_rejects(text, message):
    with pytest.raises(ExpressionError) as excinfo:
        translate_camunda(text)
    assert message in str(excinfo.value)


# --------------------------------------------------------------------------------------------------
# Timers

TIMERS = [
    ("PT4H", "timeDuration", '"PT4H"'),
    ("P1D", "timeDuration", '"P1D"'),
    ("P3DT2H", "timeDuration", '"P3DT2H"'),
    ("PT0.2S", "timeDuration", '"PT0.2S"'),
    ("PT0S", "timeDuration", '"PT0S"'),
    ("P2W", "timeDuration", '"P2W"'),
    ("  PT3S\n", "timeDuration", '"PT3S"'),
    ("R3/PT1H", "timeCycle", '"R3/PT1H"'),
    ("R/PT1H", "timeCycle", '"R/PT1H"'),
    ("R2/PT5M", "timeCycle", '"R2/PT5M"'),
    ("R2/2026-12-01T09:00:00Z/PT5M", "timeCycle", '"R2/2026-12-01T09:00:00Z/PT5M"'),
    ("2026-12-01T09:00:00Z", "timeDate", '"2026-12-01T09:00:00Z"'),
    ("2026-12-01T09:00:00+08:00", "timeDate", '"2026-12-01T09:00:00+08:00"'),
    ('"PT4H"', "timeDuration", '"PT4H"'),
    ("'PT4H'", "timeDuration", "'PT4H'"),
    ("'R6/P1D'", "timeCycle", "'R6/P1D'"),
    ("${delay}", "timeDuration", "delay"),
    ("#{reminder}", "timeCycle", "reminder"),
    ("${'PT1H'}", "timeDuration", "'PT1H'"),
    ("due_date", "timeDate", "due_date"),
    ("PTO_days", "timeDuration", "PTO_days"),
    ("'P' + str(days) + 'D'", "timeDuration", "'P' + str(days) + 'D'"),
]


@pytest.mark.parametrize(("text", "kind", "expected"), TIMERS)
def test_normalize_timer(text, kind, expected):
    assert normalize_timer(text, kind) == expected


LITERAL_TIMERS = [t for t in TIMERS if t[2][0] in "'\"" and "+" not in t[2]]


@pytest.mark.parametrize(("text", "kind", "expected"), LITERAL_TIMERS)
def test_normalized_literals_evaluate_to_values_the_engine_parses(text, kind, expected):
    value, _ = evaluate(normalize_timer(text, kind), {})
    if kind == "timeDuration":
        TimerEventDefinition.parse_iso_duration(value)
    elif kind == "timeDate":
        TimerEventDefinition.get_datetime(value)
    else:
        TimerEventDefinition.parse_iso_recurring_interval(value)


def test_unbounded_cycle_is_minus_one_repetitions_in_the_engine():
    value, _ = evaluate(normalize_timer("R/PT1H", "timeCycle"), {})
    cycles, _, duration = TimerEventDefinition.parse_iso_recurring_interval(value)
    assert cycles == -1
    assert duration.total_seconds() == 3600


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("0/5 0/1 * 1/1 * ?", "timeCycle",
         "timeCycle '0/5 0/1 * 1/1 * ?' is a cron expression; only ISO-8601 repeating intervals "
         "(R3/PT1H) are supported"),
        ("0 0 9 * * MON-FRI", "timeCycle", "is a cron expression"),
        ("PT4X", "timeDuration", "timeDuration 'PT4X' is not an ISO-8601 duration"),
        ('"PT4X"', "timeDuration", "is not an ISO-8601 duration"),
        ("P", "timeDuration", "is not an ISO-8601 duration"),
        ("PT", "timeDuration", "is not an ISO-8601 duration"),
        ("P1W2D", "timeDuration", "is not an ISO-8601 duration"),
        ("PT1.5H30M", "timeDuration", "is not an ISO-8601 duration"),
        ("R3/PT1H", "timeDuration", "is not an ISO-8601 duration"),
        ("PT1H", "timeCycle", "is not an ISO-8601 repeating interval"),
        ("R3/PT1H/PT2H", "timeCycle", "is not an ISO-8601 repeating interval"),
        ("R3/PT1X", "timeCycle", "is not an ISO-8601 repeating interval"),
        ("PT1H", "timeDate", "is not an ISO-8601 date-time"),
        ("2026-13-01T00:00:00Z", "timeDate", "is not an ISO-8601 date-time"),
        ("", "timeDate", "timeDate is empty"),
        ("   ", "timeDuration", "timeDuration is empty"),
        ("__import__('os').system('id')", "timeDuration", "function '__import__' is not allowed"),
        ("${execution.getVariable('d')}", "timeDuration", "method calls are not supported"),
        ("in 4 hours", "timeDuration", "neither an ISO-8601 value nor a valid expression"),
        ("PT4H", "timeSpan", "unknown timer kind"),
    ],
)
def test_normalize_timer_rejects(text, kind, message):
    with pytest.raises(ExpressionError) as excinfo:
        normalize_timer(text, kind)
    assert message in str(excinfo.value)


def test_iso_helpers():
    assert is_iso_duration("P1Y2M3DT4H5M6S")
    assert not is_iso_duration("P1Y2M3DT")
    assert not is_iso_duration(5)
    assert is_iso_datetime("2026-12-01")
    assert not is_iso_datetime("tomorrow")
    assert is_iso_cycle("R5/2026-12-01T09:00:00Z/P1D")
    assert not is_iso_cycle("R5")
    assert is_cron("0 0/5 * * * ?")
    assert not is_cron("PT4H")


# --------------------------------------------------------------------------------------------------
# Restricted scripts: assignments, augmented assignments and print(), nothing else


@pytest.mark.parametrize(("script", "before", "after"), [
    ("u += v", {"u": 1, "v": 2}, {"u": 3}),
    ("total -= 2.5", {"total": 10}, {"total": 7.5}),
    ("n *= 3", {"n": 4}, {"n": 12}),
    ("n /= 4", {"n": 10}, {"n": 2.5}),
    ("n //= 4", {"n": 10}, {"n": 2}),
    ("n %= 4", {"n": 10}, {"n": 2}),
    ("s += '!'", {"s": "hi"}, {"s": "hi!"}),
    ("items += [v]", {"items": [1], "v": 2}, {"items": [1, 2]}),
    ("n -= 1 + 1", {"n": 10}, {"n": 8}),  # the right side is one operand: n - (1 + 1)
    ("x = 1\nx += 2\ny = x * 2", {}, {"x": 3, "y": 6}),
    ("pass\nx = 1", {}, {"x": 1}),
])
def test_script_assignment_forms(script, before, after):
    variables = dict(before)
    result = expressions.run_script(script, variables)
    assert result.assigned == after
    assert variables == {**before, **after}
    assert result.printed == []


def test_print_is_recorded_never_written(capsys):
    variables = {"value": "x", "quantity": 1, "items": [1, 2]}
    result = expressions.run_script('print(f"Value: {value} / Quantity {quantity}")\n'
                                    'print("items", items, len(items), sep="|")\nprint()', variables)
    assert result.printed == ["Value: x / Quantity 1", "items|[1, 2]|2", ""]
    assert result.assigned == {}
    assert capsys.readouterr() == ("", "")


def test_print_output_is_bounded():
    long_line = expressions.run_script("print('x' * 5000)", {}).printed
    assert long_line == ["x" * expressions.MAX_PRINT_LENGTH + "... (4000 more characters)"]
    many = expressions.run_script("\n".join(f"print({i})" for i in range(60)), {})
    assert len(many.printed) == expressions.MAX_PRINT_LINES
    assert many.dropped_lines == 60 - expressions.MAX_PRINT_LINES


@pytest.mark.parametrize(("script", "message"), [
    ("import os", "line 1: only 'name = expression', 'name += expression' (also -=, *=, /=, //=, %=) and print(...) "
                  "statements are allowed in restricted scripts, not an Import statement"),
    ("x = 1\nopen('/etc/passwd')", "line 2: only 'name = expression'"),
    ("x = 1\nopen('/etc/passwd')", "not a call of 'open'"),
    ("u **= 2", "line 1: augmented assignment '**=' is not allowed (only +=, -=, *=, /=, //=, %=)"),
    ("u <<= 1", "augmented assignment '<<=' is not allowed"),
    ("u |= 1", "augmented assignment '|=' is not allowed"),
    ("d['k'] += 1", "line 1: only a plain variable name can be assigned, not \"d['k']\""),
    ("a = b = 1", "chained assignments (a = b = ...) are not allowed"),
    ("_secret += 1", "names starting with '_' are not allowed ('_secret')"),
    ("u += __import__('os').system('id')", "line 1: function '__import__' is not allowed"),
    ("u += open('/etc/passwd').read()", "function 'open' is not allowed"),
    ("u += ().__class__", "attribute '__class__' is not allowed"),
    ("u += 9 ** 9 ** 9", "too large"),
    ("print(open('/etc/passwd').read())", "function 'open' is not allowed"),
    ("print('x', file=sys.stderr)", "print() takes positional arguments and sep= only, not file="),
    ("print(*items)", "starred (*) unpacking is not allowed"),
    ("print(**options)", "print() takes positional arguments and sep= only, not **"),
    ("exec('import os')", "not a call of 'exec'"),
    ("for i in x: y = i", "not a For statement"),
    ("def f(): pass", "not a FunctionDef statement"),
    ("x", "not a bare expression"),
    ("x +=", "line 1: invalid syntax"),
])
def test_script_refused_forms(script, message):
    with pytest.raises(ExpressionError) as refused:
        expressions.check_script(script)
    assert message in str(refused.value)
    with pytest.raises(ExpressionError):
        expressions.run_script(script, {"u": 1, "x": [1], "items": [1], "options": {}, "d": {"k": 1}})


def test_augmented_assignment_uses_the_bounded_operators():
    with pytest.raises(ExpressionError, match="longer than"):
        expressions.run_script("s *= 10 ** 8", {"s": "x"})
    with pytest.raises(ExpressionError, match="%-formatting of strings is not allowed"):
        expressions.run_script("s %= 1", {"s": "%s"})
    with pytest.raises(ExpressionError, match="name 'missing' is not defined"):
        expressions.run_script("missing += 1", {})


def test_script_limits():
    with pytest.raises(ExpressionError, match="more than 200 statements"):
        expressions.check_script("\n".join("x = 1" for _ in range(201)))
    with pytest.raises(ExpressionError, match="longer than 50000 characters"):
        expressions.check_script("x = '" + "a" * 50_000 + "'")
