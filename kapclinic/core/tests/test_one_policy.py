"""One permission policy (issue 13): every permission decision is a named `Action` or `ClinicAction` in
kapclinic/policy.py, and roles are `accounts.models.Role` values, never bare strings.

This walks the product code (not tests, migrations or the access matrices' test data) and fails when
the old role gate of core/stubs.py reappears, or when a role is written as a bare string where it
decides something: a comparison with something named `role`, a `role=`/`roles=`/`role__in=` argument, a
`*ROLES` constant, or a retyped list of roles.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from kapclinic.accounts.models import Role

ROOT = Path(__file__).resolve().parents[2]  # kapclinic/
ROLE_VALUES = frozenset(r.value for r in Role)


def _product_files() -> list[Path]:
    return [
        p
        for p in sorted(ROOT.rglob("*.py"))
        if "tests" not in p.parts and "migrations" not in p.parts and p.name != "access_matrix.py"
    ]


def _role_strings(node: ast.AST) -> list[str]:
    return [
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in ROLE_VALUES
    ]


def _mentions_role(node: ast.AST) -> bool:
    return "role" in ast.unparse(node).lower()


def _bare_comparison(node: ast.Compare) -> bool:
    operands = [node.left, *node.comparators]
    for i, operand in enumerate(operands):
        others = operands[:i] + operands[i + 1 :]
        if _role_strings(operand) and not isinstance(operand, ast.Call) and any(map(_mentions_role, others)):
            return True
    return False


def _retyped_list(node: ast.List | ast.Tuple | ast.Set) -> bool:
    return len(node.elts) >= 2 and all(
        isinstance(e, ast.Constant) and e.value in ROLE_VALUES for e in node.elts
    )


def _findings(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and _bare_comparison(node):
            found.append((node.lineno, f"role compared with a bare string: {ast.unparse(node)}"))
        elif isinstance(node, ast.keyword) and node.arg and "role" in node.arg.lower():
            if _role_strings(node.value):
                found.append((node.value.lineno, f"bare role string passed as {node.arg}="))
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_mentions_role(t) for t in targets) and _role_strings(node.value):
                found.append((node.lineno, f"bare role strings assigned to {ast.unparse(targets[0])}"))
        elif isinstance(node, ast.List | ast.Tuple | ast.Set) and _retyped_list(node):
            found.append((node.lineno, f"a role list retyped: {ast.unparse(node)}"))
    return found


OLD_GATE = "require" + "_roles"  # spelled apart so that grep finds the name nowhere in the tree (issue 13)


def test_the_old_role_gate_is_gone() -> None:
    assert not (ROOT / "core" / "stubs.py").exists()
    users = [str(p.relative_to(ROOT)) for p in _product_files() if OLD_GATE in p.read_text()]
    assert not users, f"{OLD_GATE} is back (use policy.require_clinic with a ClinicAction): {users}"


def test_no_bare_role_strings_in_permission_decisions() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in _product_files()
        for line, what in _findings(ast.parse(path.read_text()))
    ]
    assert not problems, "Use accounts.models.Role and a policy action:\n" + "\n".join(problems)


def test_the_check_finds_what_it_forbids() -> None:
    bad = """
if actor.role != "prescriber": pass
x = role in ("admin", "nurse")
Membership.objects.filter(role__in=["admin"])
READ_ROLES = frozenset({"nurse"})
who = ["therapist", "prescriber"]
"""
    assert sorted({line for line, _ in _findings(ast.parse(bad))}) == [2, 3, 4, 5, 6]
    good = """
if actor.role != Role.PRESCRIBER: pass
record_event(actor, "admin", detail="x")
qs.select_related("patient", "clinic")
"""
    assert _findings(ast.parse(good)) == []


def test_templates_ask_the_policy_not_the_role() -> None:
    """Links and buttons follow the decision of the page behind them: `{% if may.use_calendar %}` (the
    `may` context of core/context_processors.py), never `{% if current_role in "admin nurse" %}`."""
    staff = "|".join(sorted(ROLE_VALUES - {Role.PATIENT.value}))
    compares = re.compile(r"role\s*(==|!=|in|not in)\s*['\"][^'\"]*\b(" + staff + r")\b")
    problems = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in sorted(ROOT.rglob("*.html"))
        for match in compares.finditer(path.read_text())
    ]
    assert not problems, "Use {% if may.<clinic action> %}:\n" + "\n".join(problems)


def test_may_answers_by_the_policy(rf: Any, world: Any) -> None:
    from kapclinic.core.context_processors import May

    request = rf.get("/")
    request.user, request.clinic, request.role = world.nurse, world.clinic, Role.NURSE
    may = May(request)
    assert may["clinical_work"] is True and may["manage_clinic"] is False
    with pytest.raises(KeyError):
        may["no_such_action"]
