"""The auditor's commands: ``baseline fit|show|savings``, ``report``, ``export``, ``backfill`` (README, Commands).

Dates are UTC. ``--from`` is inclusive; ``--to`` given as a date includes that whole day (it means
"up to the end of that day"), given as a timestamp it is an exclusive end.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from common.cli import EXIT_OK, EXIT_USAGE, CliError
from common.values import to_utc

if TYPE_CHECKING:
    import duckdb
    from rich.console import Console

    from rules.mv import Baseline


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``baseline``, ``report``, ``export`` and ``backfill`` to the ``kilnwatch`` parser."""
    p = sub.add_parser(
        "baseline",
        help="M&V energy baselines: fit, show, savings",
        description="Regression energy baselines (EnB) per asset, with EnPI Lite and ASHRAE G14 checks.",
    )
    bsub = p.add_subparsers(dest="baseline_command", metavar="SUBCOMMAND", required=True)

    f = bsub.add_parser(
        "fit",
        help="fit and store a baseline",
        description="Fit target ~ drivers by OLS over a baseline period. Target and drivers are KPI names "
        "(kpi table, that asset) or tag names (samples). Rates are integrated per period (_kw -> kWh, "
        "_tph -> t), *_total counters differenced, other values averaged.",
    )
    _db_arg(f)
    f.add_argument("--asset", required=True, help="asset id, e.g. raw_mill1")
    f.add_argument("--target", required=True, help="KPI or tag, e.g. power_kw or specific_power_kwh_per_t")
    f.add_argument(
        "--drivers", required=True, help="comma-separated KPIs or tags, e.g. feed_tph,raw_mill1.r90_pct"
    )
    f.add_argument(
        "--from", dest="start", required=True, metavar="DATE", help="baseline period start, inclusive (UTC)"
    )
    f.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="DATE",
        help="baseline period end (UTC); a date is inclusive (the whole day), a timestamp exclusive",
    )
    f.add_argument(
        "--granularity", choices=("hour", "day", "month"), default="day", help="period (default day)"
    )
    f.add_argument("--site", default=None, help="site (default: the only site in the file)")
    f.set_defaults(func=cmd_baseline_fit)

    s = bsub.add_parser("show", help="list stored baselines")
    _db_arg(s)
    s.add_argument("--site", default=None, help="only this site")
    s.set_defaults(func=cmd_baseline_show)

    v = bsub.add_parser(
        "savings",
        help="compute and store expected vs actual, avoided energy and CUSUM",
        description="Avoided energy = expected (baseline) - actual, per period; CUSUM rising = savings.",
    )
    _db_arg(v)
    v.add_argument("--id", dest="baseline_id", required=True, help="baseline id (see `baseline show`)")
    v.add_argument(
        "--from", dest="start", default=None, metavar="DATE", help="default: end of baseline period"
    )
    v.add_argument(
        "--to",
        dest="end",
        default=None,
        metavar="DATE",
        help="a date is inclusive (the whole day), a timestamp exclusive; "
        "default: the end of the last period holding data",
    )
    v.set_defaults(func=cmd_baseline_savings)

    r = sub.add_parser("report", help="self-contained HTML auditor report with tables and plots")
    _db_arg(r)
    r.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="DATE",
        help="first day or instant, inclusive (UTC): YYYY-MM-DD, YYYY-MM or ISO 8601",
    )
    r.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="DATE",
        help="last day, inclusive (UTC): YYYY-MM-DD includes that whole day, YYYY-MM that month; "
        "an ISO 8601 timestamp is an exclusive end",
    )
    r.add_argument("--out", required=True, metavar="FILE.html", help="HTML file to write")
    r.add_argument("--site", default=None, help="site (default: the only site in the file)")
    r.add_argument(
        "--protocol",
        action="store_true",
        help="write the CSI/GCCA protocol sheet instead (monthly and whole-period CO2 and energy "
        "indicators with coverage and GNR references): FILE.html and FILE.csv beside it",
    )
    r.set_defaults(func=cmd_report)

    e = sub.add_parser(
        "export",
        help="Parquet export, Hive-partitioned by table/site/date",
        description="Writes DIR/table=<t>/site=<s>/date=<YYYY-MM-DD>/part-0.parquet (dates UTC).",
    )
    _db_arg(e)
    e.add_argument("--out", required=True, metavar="DIR", help="directory of the Hive-partitioned tree")
    e.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="DATE",
        help="first day or instant, inclusive (UTC): YYYY-MM-DD, YYYY-MM or ISO 8601; default: from the first row",
    )
    e.add_argument(
        "--to",
        dest="end",
        default=None,
        metavar="DATE",
        help="last day, inclusive (UTC): YYYY-MM-DD includes that whole day, YYYY-MM that month; "
        "an ISO 8601 timestamp is an exclusive end; default: up to the last row",
    )
    e.add_argument("--site", default=None, help="only this site")
    e.add_argument("--tables", default=None, help="comma-separated subset of tables")
    e.set_defaults(func=cmd_export)

    b = sub.add_parser(
        "backfill",
        help="simulate weeks of plant history faster than real time into a DuckDB file",
        description="Runs the simulator's plant model without sockets and stores samples, KPIs and alerts, "
        "so reports and baselines have content on a fresh machine.",
    )
    b.add_argument("--db", required=True, metavar="FILE", help="DuckDB file (created if missing)")
    b.add_argument("--days", type=float, required=True, help="simulated days")
    b.add_argument("--scenario", default="normal", help="simulator scenario(s), e.g. false_air_leak@3d")
    b.add_argument("--seed", type=int, default=1, help="random seed (same seed, same history)")
    b.add_argument(
        "--start", default=None, metavar="DATE", help="first simulated day (default: DAYS before today)"
    )
    b.add_argument(
        "--sample-every-secs", type=float, default=60.0, help="stored sample interval (default 60)"
    )
    b.add_argument("--config", default=None, metavar="FILE", help="config whose assets/rules to use")
    b.set_defaults(func=cmd_backfill)


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, metavar="FILE", help="site DuckDB file")


# --------------------------------------------------------------------------------------------
# Argument helpers

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


def parse_when(text: str, *, end: bool = False, what: str = "date") -> datetime:
    """UTC datetime from ``YYYY-MM-DD``, ``YYYY-MM`` or ISO 8601; an end date covers its whole day/month."""
    t = text.strip()
    try:
        if _DATE.match(t):
            d = date.fromisoformat(t)
            dt = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return dt + timedelta(days=1) if end else dt
        if _MONTH.match(t):
            y, m = (int(x) for x in t.split("-"))
            dt = datetime(y, m, 1, tzinfo=UTC)
            if end:
                dt = dt.replace(year=y + m // 12, month=m % 12 + 1)
            return dt
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{what} {text!r} is not YYYY-MM-DD or an ISO 8601 timestamp", EXIT_USAGE) from None
    return to_utc(dt)


def _range(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    start = parse_when(args.start, what="--from") if args.start else None
    end = parse_when(args.end, end=True, what="--to") if args.end else None
    if start is not None and end is not None and end <= start:
        raise CliError("--to must be after --from", EXIT_USAGE)
    return start, end


def open_db(path: str, *, create: bool = False, read_only_ok: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a site database with the schema in place; one-line errors for missing/locked/foreign files.

    With ``read_only_ok`` a file that cannot be opened for writing (a write-protected snapshot) is
    opened read-only instead. A file held by another process raises ``storage.DatabaseInUseError``
    from ``storage.connect`` (one line, exit 2), as for ``run`` and ``demo``.
    """
    import os

    import duckdb

    from agent import storage

    p = Path(path)
    if not create and not p.is_file():
        raise CliError(f"{path}: no such database file")
    try:
        if read_only_ok and not os.access(p, os.W_OK):
            return storage.connect(path, read_only=True)
        return storage.connect(path)
    except duckdb.Error as exc:
        raise CliError(f"{path}: cannot open as a DuckDB database ({str(exc).splitlines()[0]})") from None


def _console() -> Console:
    """Rich console on stdout; when piped or redirected, wide enough that tables do not wrap."""
    import sys

    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _fmt(v: float, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "inf"
    if v != 0 and (abs(v) >= 1e7 or abs(v) < 1e-3):
        return f"{v:.{digits}g}"
    return f"{v:,.{digits}g}" if abs(v) < 1000 else f"{v:,.1f}"


def _fmt_p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


# --------------------------------------------------------------------------------------------
# baseline


def cmd_baseline_fit(args: argparse.Namespace) -> int:
    import duckdb

    from agent import mv_store
    from rules.mv import MVError

    start, end = _range(args)
    assert start is not None and end is not None
    drivers = [d.strip() for d in args.drivers.split(",") if d.strip()]
    if not drivers:
        raise CliError("--drivers needs at least one name", EXIT_USAGE)
    con = open_db(args.db)
    try:
        site = mv_store.resolve_site(con, args.site)
        b, _ = mv_store.fit_from_db(
            con,
            site=site,
            asset=args.asset,
            target=args.target.strip(),
            drivers=drivers,
            start=start,
            end=end,
            granularity=args.granularity,
        )
        mv_store.store_baseline(con, b)
    except MVError as exc:
        raise CliError(str(exc)) from None
    except duckdb.Error as exc:
        raise CliError(f"database error: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    print_baseline(_console(), b)
    return EXIT_OK


def print_baseline(console: Console, b: Baseline) -> None:
    """Coefficients and fit metrics as rich tables."""
    from rich.markup import escape
    from rich.table import Table

    from rules.mv import per_unit

    verdict = "[green]valid[/]" if b.valid else "[red]not valid[/]"
    console.print(
        f"[bold]baseline {b.baseline_id}[/]  {b.site}/{b.asset}: {escape(f'{b.target} [{b.unit}]')} ~ "
        f"{' + '.join(b.drivers)}  ({b.granularity}, {b.period_from:%Y-%m-%d %H:%M} .. "
        f"{b.period_to:%Y-%m-%d %H:%M} UTC, n = {b.n})  EnPI Lite: {verdict}"
    )
    t = Table()
    console.print("coefficients:")
    for col in ("term", "coefficient", "std error", "t", "p-value"):
        t.add_column(col, justify="left" if col == "term" else "right")
    terms = ("intercept", *b.drivers)
    coefs = (b.intercept, *b.coefficients)
    for i, name in enumerate(terms):
        se = b.std_errors[i]
        tval = coefs[i] / se if se else math.inf
        unit = b.unit if i == 0 else per_unit(b.unit, b.driver_units[i - 1]) if b.driver_units else ""
        t.add_row(
            escape(f"{name} [{unit}]") if unit else name,
            _fmt(coefs[i], 6),
            _fmt(se),
            _fmt(tval),
            _fmt_p(b.p_values[i]),
        )
    console.print(t)
    console.print(
        "fit metrics (ASHRAE Guideline 14; p = fitted parameters incl. intercept, n - p denominators):"
    )
    m = Table()
    m.add_column("metric")
    m.add_column("value", justify="right")
    m.add_row("R²", f"{b.r2:.4f}")
    m.add_row("adjusted R²", f"{b.adj_r2:.4f}")
    m.add_row("CV(RMSE) %", f"{b.cv_rmse:.4f}")
    m.add_row("NMBE %", f"{round(b.nmbe, 4) + 0.0:.4f}")  # no "-0.0000" for an in-sample zero
    m.add_row("F-test p", _fmt_p(b.f_pvalue))
    m.add_row("mean target", f"{_fmt(b.target_mean)} {b.unit}")
    console.print(m)
    for w in b.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")


def cmd_baseline_show(args: argparse.Namespace) -> int:
    from rich.table import Table

    from agent import mv_store

    con = open_db(args.db, read_only_ok=True)
    try:
        rows = mv_store.list_baselines(con, args.site)
    finally:
        con.close()
    console = _console()
    if not rows:
        console.print("no baselines stored (fit one with `kilnwatch baseline fit`)")
        return EXIT_OK
    t = Table()
    for col in (
        "id",
        "site/asset",
        "model",
        "period (UTC, end excl.)",
        "n",
        "R²",
        "CV(RMSE) %",
        "EnPI Lite",
        "fitted (UTC)",
    ):
        t.add_column(col, no_wrap=col != "model")
    for b in rows:
        model = f"{b.target} = {_fmt(b.intercept)}" + "".join(
            f" {'+' if c >= 0 else '-'} {_fmt(abs(c))}·{d}"
            for c, d in zip(b.coefficients, b.drivers, strict=True)
        )
        t.add_row(
            b.baseline_id,
            f"{b.site}/{b.asset}",
            model,
            f"{b.period_from:%Y-%m-%d} – {b.period_to:%Y-%m-%d} ({b.granularity})",
            str(b.n),
            f"{b.r2:.3f}",
            f"{b.cv_rmse:.2f}",
            "valid" if b.valid else "not valid",
            f"{b.fitted_at:%Y-%m-%d %H:%M}",
        )
    console.print(t)
    return EXIT_OK


def cmd_baseline_savings(args: argparse.Namespace) -> int:
    import duckdb
    from rich.markup import escape
    from rich.table import Table

    from agent import mv_savings, mv_store
    from rules.mv import MVError, percent_savings

    start, end = _range(args)
    con = open_db(args.db)
    try:
        b = mv_store.load_baseline(con, args.baseline_id)
        rows, warnings = mv_savings.compute_savings(con, b, start, end)
    except MVError as exc:
        raise CliError(str(exc)) from None
    except duckdb.Error as exc:
        raise CliError(f"database error: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    console = _console()
    console.print(
        f"savings of {b.baseline_id} ({b.asset} {b.target}, {b.unit}); avoided = expected - actual, "
        "CUSUM rising = savings"
    )
    t = Table()
    for col in ("period (UTC)", "expected", "actual", "avoided", "CUSUM"):
        t.add_column(col, justify="left" if col.startswith("period") else "right")
    for r in rows.iter_rows(named=True):
        label = f"{r['ts']:%Y-%m-%d %H:%M}" + (f" ({r['fraction']:.0%})" if r["fraction"] < 1 - 1e-9 else "")
        t.add_row(
            label,
            _fmt(r["expected"]),
            _fmt(r["actual"]),
            _fmt(r["avoided"]),
            _fmt(r["cumulative_avoided"]),
        )
    console.print(t)
    pct = percent_savings(rows.drop_nulls("avoided"))
    total = rows["avoided"].sum() if rows.height else 0.0
    pct_text = f"{pct:.3f} % of the adjusted baseline" if pct is not None else "n/a"
    console.print(
        f"avoided in range: {_fmt(float(total))} {b.unit} = {pct_text}; {rows.height} period(s) stored"
    )
    for w in warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# report / export / backfill


def cmd_report(args: argparse.Namespace) -> int:
    import duckdb

    from agent import mv_store
    from agent.report import write_report
    from rules.mv import MVError

    start, end = _range(args)
    assert start is not None and end is not None
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise CliError(f"{out.parent}: no such directory")
    if args.protocol and out.suffix.lower() == ".csv":
        raise CliError(f"{out}: --protocol writes FILE.html and FILE.csv beside it; give the .html name", EXIT_USAGE)
    con = open_db(args.db, read_only_ok=True)
    try:
        site = mv_store.resolve_site(con, args.site)
        if args.protocol:
            return _write_protocol(con, site, start, end, out)
        path = write_report(con, site=site, start=start, end=end, out_path=out)
    except MVError as exc:
        raise CliError(str(exc)) from None
    except duckdb.Error as exc:
        raise CliError(f"database error: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise CliError(f"{out}: cannot write ({exc.strerror})") from None
    finally:
        con.close()
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return EXIT_OK


def _write_protocol(con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime, out: Path) -> int:
    """The protocol sheet (agent/report_protocol.py). An empty period still writes both files, as
    the normal report does, and says so on stderr: an auditor asking for a month gets its sheet."""
    import sys

    from agent.report_protocol import write_protocol

    html_path, csv_path, sheet = write_protocol(con, site=site, start=start, end=end, out_path=out)
    print(f"wrote {html_path} and {csv_path}")
    if sheet.empty:
        print(f"note: no protocol KPIs for {site} in this period; every value is empty", file=sys.stderr)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    import duckdb

    from agent.export import EXPORT_TABLES, export_parquet

    start, end = _range(args)
    tables: Sequence[str] | None = None
    if args.tables:
        tables = [t.strip() for t in args.tables.split(",") if t.strip()]
        unknown = sorted(set(tables) - set(EXPORT_TABLES))
        if unknown:
            raise CliError(
                f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(EXPORT_TABLES)}", EXIT_USAGE
            )
    con = open_db(args.db, read_only_ok=True)
    try:
        counts = export_parquet(con, args.out, start=start, end=end, site=args.site, tables=tables)
    except duckdb.Error as exc:
        raise CliError(f"export failed: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise CliError(f"{args.out}: cannot write ({exc.strerror})") from None
    finally:
        con.close()
    summary = ", ".join(f"{t} {n:,}" for t, n in counts.items())
    print(f"exported to {args.out}: {summary} rows")
    return EXIT_OK


def cmd_backfill(args: argparse.Namespace) -> int:
    from agent.backfill import BackfillError, backfill

    if not (0 < args.days <= 3660):
        raise CliError("--days must be between 0 and 3660", EXIT_USAGE)
    if args.sample_every_secs <= 0:
        raise CliError("--sample-every-secs must be positive", EXIT_USAGE)
    start = parse_when(args.start, what="--start") if args.start else None
    cfg = None
    if args.config:
        from agent.cli import config_from_args

        cfg = config_from_args(args)
    con = open_db(args.db, create=True)
    try:
        result = backfill(
            con,
            days=args.days,
            scenario=args.scenario,
            seed=args.seed,
            start=start,
            sample_every_secs=args.sample_every_secs,
            cfg=cfg,
            progress=True,
        )
    except BackfillError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    finally:
        con.close()
    print(
        f"backfilled {args.db}: {result.start:%Y-%m-%d %H:%M} .. {result.end:%Y-%m-%d %H:%M} UTC, "
        f"{result.samples:,} samples, {result.kpi_rows:,} KPI rows, {result.alert_events:,} alert events "
        f"in {result.elapsed_secs:.1f} s"
    )
    return EXIT_OK
