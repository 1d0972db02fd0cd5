"""Rule packs (docs/rules.md): the ``Rule`` type, reading and checking TOML packs, message templates.

This module owns everything about a rule up to the moment it is evaluated: the built-in cement pack
(package data ``rules/packs/cement.toml``), site packs from ``agent.rule_files`` and how a later
pack overrides or disables an earlier rule. Every problem of every pack is collected and reported at
once (one line per problem, ``file: rule 'id': ...``) so ``kilnwatch check-config`` can list them
all; nothing here evaluates a condition. Evaluation lives in rules/engine.py (live ticks) and
rules/history.py (replay over stored samples), which both take the ``Rule`` list built here.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, cast, get_args

from common.durations import parse_duration
from rules.alerts import Severity
from rules.asset_model import AssetModel
from rules.assets import AssetType, RuleSettings
from rules.catalogue import VOCABULARY, vocabulary_for
from rules.expr import Condition, ExprError, name_columns, parse_condition, single_name

__all__ = [
    "Rule",
    "RulePackError",
    "builtin_pack_text",
    "load_rules",
    "parse_rule_pack",
    "render_message",
]

log = logging.getLogger(__name__)

BUILTIN_PACK = "cement.toml"
SEVERITIES: tuple[str, ...] = get_args(Severity)
ASSET_TYPES: tuple[str, ...] = get_args(AssetType)
TEMPLATE_FIELDS = frozenset({"value", "threshold", "unit", "asset", "rule", "severity", "site"})
RULE_KEYS = frozenset(
    {
        "id",
        "asset",
        "asset_type",
        "when",
        "for",
        "clear",
        "suppress_when",
        "severity",
        "message",
        "resolved_message",
        "enabled",
        "window",
        "unit",
        "description",
    }
)
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class RulePackError(Exception):
    """Rule packs that cannot be used; ``problems`` holds one line per problem (file, rule, name)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# ------------------------------------------------------------------------------------------ rules
@dataclass(frozen=True)
class Rule:
    """One rule of a pack, its conditions parsed once (docs/rules.md plus ``window``/``asset_type``)."""

    id: str
    asset: str
    when: Condition
    for_secs: float = 0.0
    clear: Condition | None = None
    suppress_when: Condition | None = None
    severity: Severity = "warning"
    message: str = "{rule} on {asset}: {value} {unit} (threshold {threshold})"
    resolved_message: str | None = None
    enabled: bool = True
    #: Evaluate on KPIs over this rolling window (None = the current 1-min values).
    window_secs: int | None = None
    asset_types: tuple[str, ...] = ()
    unit: str | None = None
    description: str = ""
    source: str = ""

    @property
    def names(self) -> frozenset[str]:
        out = set(self.when.names)
        for c in (self.clear, self.suppress_when):
            if c is not None:
                out |= c.names
        return frozenset(out)

    @property
    def message_names(self) -> tuple[str, ...]:
        """KPIs, roles and parameters the message templates show besides the alert's own fields."""
        out: dict[str, None] = {}
        for tmpl in (self.message, self.resolved_message):
            for name in message_fields(tmpl or ""):
                out[name] = None
        return tuple(out)

    def applies_to(self, asset_id: str, asset_type: str) -> bool:
        if self.asset_types and asset_type not in self.asset_types:
            return False
        return fnmatch.fnmatchcase(asset_id, self.asset)

    def value_name(self) -> str | None:
        cmp = self.when.first_comparison()
        return single_name(cmp.left) if cmp is not None else None


# ------------------------------------------------------------------------------------------ templates
#: Per-fuel heat KPIs are named by the configured fuels (docs/kpis.md §9).
_FUEL_KPI = re.compile(r"^fuel_[a-z][a-z0-9_]*_gj_per_h$")
#: Longest message a template may produce; widths and precisions above this many digits are refused
#: (a ``{value:99999999}`` would build a 100 MB alert).
MAX_MESSAGE_CHARS = 1000
_MAX_SPEC_NUMBER = 100


def message_fields(template: str) -> list[str]:
    """Names in a template besides the alert's own fields and ``currency`` (KPIs, roles, parameters)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return []
    return [n for _, n, _, _ in parsed if n and n not in TEMPLATE_FIELDS and n != "currency"]


def _check_template(template: str) -> str | None:
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"bad message template ({exc})"
    if len(template) > MAX_MESSAGE_CHARS:
        return f"message template longer than {MAX_MESSAGE_CHARS} characters"
    sample: dict[str, object] = {
        "value": 1.0,
        "threshold": 2.0,
        "unit": "x",
        "asset": "a",
        "rule": "r",
        "severity": "info",
        "site": "s",
        "currency": "CNY",
    }
    for _, name, spec, _conv in fields:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS and name != "currency":
            if name in VOCABULARY or _FUEL_KPI.match(name):
                sample[name] = 1.0
            else:
                allowed = ", ".join(sorted(TEMPLATE_FIELDS | {"currency"}))
                return (
                    f"message field {{{name}}} is not one of {allowed}, a KPI, a signal role or a parameter"
                )
        if spec and "{" in spec:
            return "nested fields in a message template are not supported"
        if spec and any(int(n) > _MAX_SPEC_NUMBER for n in re.findall(r"\d+", spec)):
            return f"format {{{name}:{spec}}}: width or precision above {_MAX_SPEC_NUMBER}"
    try:
        rendered = string.Formatter().vformat(template, (), sample)
    except (ValueError, TypeError) as exc:
        return f"bad message template ({exc})"
    if len(rendered) > MAX_MESSAGE_CHARS:
        return f"message longer than {MAX_MESSAGE_CHARS} characters"
    return None


class _SafeFormatter(string.Formatter):
    """Formats a message; a missing value shows as ``n/a`` instead of failing on ``{value:.0f}``."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        # a name the message shows but this event has no value for (a resolve without a tick)
        return kwargs.get(key) if isinstance(key, str) else super().get_value(key, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "n/a"
        try:
            return str(super().format_field(value, format_spec))
        except (ValueError, TypeError):
            return str(value)


_FORMATTER = _SafeFormatter()


def render_message(template: str, **fields: object) -> str:
    """Fill a rule's message template (the fields of :data:`TEMPLATE_FIELDS`, ``currency`` and the
    message names of the rule, NULL shown as ``n/a``)."""
    return _FORMATTER.vformat(template, (), fields)


# ------------------------------------------------------------------------------------------ one [[rule]]
# A table is read in fixed steps (keys as in docs/rules.md, "Rule packs"); each appends its problems
# in a fixed order, and tests/rules/test_rules_packs.py pins their texts and that order.
@dataclass(frozen=True)
class _Table:
    """One ``[[rule]]`` table being read; ``where`` (``file: rule 'id'``) starts each problem."""

    raw: dict[str, Any]
    where: str
    problems: list[str]

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.where}: {text}")

    def text(self, key: str, default: str | None = None) -> str | None:
        """The value of ``key`` when it is a text (or absent: ``default``); None and a problem otherwise."""
        v = self.raw.get(key, default)
        if v is not None and not isinstance(v, str):
            self.problem(f"{key} must be a text")
            return None
        return v

    def condition(self, key: str) -> Condition | None:
        """``key`` parsed by rules/expr.py; None when absent or on a problem (with its column)."""
        src = self.text(key)
        if src is None:
            return None
        if (why := _too_complex(src)) is not None:
            self.problem(f"{key}: {why}")
            return None
        try:
            return parse_condition(src)
        except ExprError as exc:
            self.problem(f"{key}: {exc}")
            return None
        except RecursionError:
            self.problem(f"{key}: nested too deeply (at most {MAX_NESTING} levels)")
            return None


#: Bounds of a condition: deeper nesting or longer text is a mistake (or an attack), never a plant rule.
MAX_NESTING = 20
MAX_CONDITION_CHARS = 2000
#: ``for`` and ``window`` beyond a week are refused: the engine keeps per-minute state for them.
MAX_DURATION_SECS = 7 * 86400


def _too_complex(src: str) -> str | None:
    """Why a condition text is refused before parsing, or None (parsing it could exhaust the stack)."""
    if len(src) > MAX_CONDITION_CHARS:
        return f"longer than {MAX_CONDITION_CHARS} characters"
    depth = deepest = 0
    for ch in src:
        depth += (ch == "(") - (ch == ")")
        deepest = max(deepest, depth)
    nots = len(re.findall(r"\bnot\b", src))
    if deepest > MAX_NESTING or nots > MAX_NESTING:
        return f"nested deeper than {MAX_NESTING} levels"
    return None


def _identity(t: _Table) -> tuple[str, bool] | None:
    """Unknown keys (typos), then ``id`` and ``enabled``: None when either is unusable.

    Unknown keys are reported but do not stop the reading, so one pass shows every typo; without a
    valid id or enabled flag nothing else about the table can be attributed, so reading stops.
    """
    for k in sorted(set(t.raw) - RULE_KEYS):
        t.problem(f"unknown key '{k}' (typo?)")
    rid = t.raw.get("id")
    if not isinstance(rid, str) or not _ID.match(rid):
        t.problem("id must be a text of letters, digits, '_', '.', '-'")
        return None
    enabled = t.raw.get("enabled", True)
    if not isinstance(enabled, bool):
        t.problem("enabled must be true or false")
        return None
    return rid, enabled


def _conditions(t: _Table) -> tuple[Condition | None, Condition | None, Condition | None]:
    """``when`` (required), ``clear`` and ``suppress_when``, parsed once with rules/expr.py."""
    if "when" not in t.raw:
        t.problem("'when' is required")
    return t.condition("when"), t.condition("clear"), t.condition("suppress_when")


def _scope(t: _Table) -> tuple[str, Severity, list[str]]:
    """The ``asset`` glob (default every asset), the ``severity`` and the ``asset_type`` list."""
    asset = t.text("asset", "*") or "*"
    severity = t.raw.get("severity", "warning")
    if severity not in SEVERITIES:
        t.problem(f"severity must be one of {', '.join(SEVERITIES)}")
    types_raw = t.raw.get("asset_type", [])
    types = [types_raw] if isinstance(types_raw, str) else types_raw
    if not isinstance(types, list) or any(tp not in ASSET_TYPES for tp in types):
        t.problem(f"asset_type must be one or a list of {', '.join(ASSET_TYPES)}")
        types = []
    return asset, cast(Severity, severity), types


def _durations(t: _Table) -> tuple[float, float]:
    """``for`` (default 0) and ``window`` (0 = the current values) in seconds, via common/durations.py."""
    for_secs = window_secs = 0.0
    try:
        for_secs = parse_duration(t.raw.get("for", 0))
        if for_secs > MAX_DURATION_SECS:
            raise ValueError(f"longer than {MAX_DURATION_SECS // 86400} days")
    except ValueError as exc:
        t.problem(f"for: {exc}")
        for_secs = 0.0
    if "window" in t.raw:
        try:
            window_secs = parse_duration(t.raw["window"])
            if window_secs < 1:
                raise ValueError("a rule window must be at least 1 s")
            if window_secs > MAX_DURATION_SECS:
                raise ValueError(f"longer than {MAX_DURATION_SECS // 86400} days")
        except ValueError as exc:
            t.problem(f"window: {exc}")
            window_secs = 0.0
    return for_secs, window_secs


def _texts(t: _Table) -> tuple[str, str | None, str | None, str]:
    """``message`` and ``resolved_message`` (templates: TEMPLATE_FIELDS only), ``unit``, ``description``."""
    message = t.text("message", Rule.message) or Rule.message
    resolved = t.text("resolved_message")
    for key, tmpl in (("message", message), ("resolved_message", resolved)):
        if tmpl is not None and (err := _check_template(tmpl)) is not None:
            t.problem(f"{key}: {err}")
    return message, resolved, t.text("unit"), t.text("description", "") or ""


def _check_names(t: _Table, types: list[str], conditions: dict[str, Condition | None]) -> None:
    """Every name must be a KPI, a signal role or an asset parameter (of the given asset types).

    A known name outside the types' vocabulary says which types it misses; a name known nowhere is
    reported as unknown (docs/rules.md, "Rule packs", lists the names).
    """
    vocab = VOCABULARY if not types else frozenset().union(*(vocabulary_for(tp) for tp in types))
    for key, cond in conditions.items():
        if cond is None:
            continue
        for name in name_columns(cond.tree):
            if name in vocab:
                continue
            if name in VOCABULARY:
                t.problem(f"{key}: name '{name}' does not apply to {'/'.join(types)} assets")
            else:
                t.problem(f"unknown name '{name}'")


def _rule_from_table(
    raw: dict[str, Any], source: str, index: int, problems: list[str]
) -> Rule | tuple[str, bool] | None:
    """A rule, or ``(id, False)`` for a bare ``enabled = false`` override, or None on problems."""
    rid = raw.get("id")
    label = f"rule '{rid}'" if isinstance(rid, str) else f"rule[{index}]"
    t = _Table(raw, f"{source}: {label}", problems)
    n_before = len(problems)
    ident = _identity(t)
    if ident is None:
        return None
    rid, enabled = ident
    if not enabled and "when" not in raw:
        return None if len(problems) > n_before else (rid, False)
    when, clear, suppress = _conditions(t)
    asset, severity, types = _scope(t)
    for_secs, window_secs = _durations(t)
    message, resolved, unit, description = _texts(t)
    _check_names(t, types, {"when": when, "clear": clear, "suppress_when": suppress})
    if len(problems) > n_before or when is None:
        return None
    return Rule(
        id=rid,
        asset=asset,
        when=when,
        for_secs=for_secs,
        clear=clear,
        suppress_when=suppress,
        severity=severity,
        message=message,
        resolved_message=resolved,
        enabled=enabled,
        window_secs=round(window_secs) if window_secs else None,
        asset_types=tuple(types),
        unit=unit,
        description=description,
        source=source,
    )


# ------------------------------------------------------------------------------------------ packs
def parse_rule_pack(text: str, source: str) -> tuple[list[Rule], list[str], list[str]]:
    """Parse one pack: (rules, ids disabled by a bare ``enabled = false``, problems)."""
    problems: list[str] = []
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [], [], [f"{source}: not valid TOML ({exc})"]
    except RecursionError:
        return [], [], [f"{source}: nested too deeply to be a rule pack"]
    for k in sorted(set(doc) - {"rule"}):
        problems.append(f"{source}: unknown top-level key '{k}' (rules are [[rule]] tables)")
    tables = doc.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        return [], [], [*problems, f"{source}: 'rule' must be an array of tables ([[rule]])"]
    rules: list[Rule] = []
    disabled: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(tables):
        got = _rule_from_table(raw, source, i, problems)
        rid = raw.get("id")
        if isinstance(rid, str):
            if rid in seen:
                problems.append(f"{source}: rule '{rid}': id declared twice in this file")
            seen.add(rid)
        if isinstance(got, Rule):
            rules.append(got)
        elif isinstance(got, tuple):
            disabled.append(got[0])
    return rules, disabled, problems


def builtin_pack_text() -> tuple[str, str]:
    """(source label, TOML text) of the built-in cement pack (package data ``rules/packs``)."""
    res = resources.files("rules").joinpath("packs", BUILTIN_PACK)
    return f"<built-in>/{BUILTIN_PACK}", res.read_text(encoding="utf-8")


def load_rules(settings: RuleSettings) -> list[Rule]:
    """The built-in pack, then each of ``agent.rule_files`` in order; a later id replaces an earlier one.

    Raises :class:`RulePackError` with one line per problem, e.g.
    ``site.toml: rule 'kiln.x': unknown name 'shc'``. Disabled rules are left out of the result.
    """
    problems: list[str] = []
    by_id: dict[str, Rule] = {}
    sources = [builtin_pack_text()]
    for f in settings.rule_files:
        try:
            sources.append((f, Path(f).read_text(encoding="utf-8")))
        except OSError as exc:
            problems.append(f"{f}: cannot read ({exc.strerror})")
        except UnicodeDecodeError as exc:
            problems.append(f"{f}: not UTF-8 text (byte {exc.start}); rule packs are UTF-8")
    for label, text in sources:
        rules, disabled, probs = parse_rule_pack(text, label)
        problems.extend(probs)
        for r in rules:
            by_id.pop(r.id, None)  # re-declared ids move to the end, in file order
            by_id[r.id] = r
        for rid in disabled:
            if by_id.pop(rid, None) is None:
                log.info("%s: rule %r disabled but not declared before", label, rid)
    problems.extend(AssetModel.build(settings).problems)
    if problems:
        raise RulePackError(problems)
    return [r for r in by_id.values() if r.enabled]
