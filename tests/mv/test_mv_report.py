"""Backfill of simulated history, and the HTML report generated from it."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from agent import mv_savings, mv_store, storage
from agent.backfill import BackfillError, backfill
from agent.cli import main
from agent.report import write_report

START = datetime(2026, 3, 2, tzinfo=UTC)
SECTIONS = ("summary", "specific-heat", "power", "grades", "baselines", "alerts", "shifts")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated day with a preheater leak from 14:00, plus a cement-mill baseline and its savings."""
    db = tmp_path_factory.mktemp("history") / "site.duckdb"
    con = storage.connect(db)
    result = backfill(con, days=1, scenario="false_air_leak@14h", seed=2, start=START)
    b, _ = mv_store.fit_from_db(
        con,
        site="plant1",
        asset="cement_mill1",
        target="power_kw",
        drivers=["feed_tph"],
        start=START,
        end=START + timedelta(hours=12),
        granularity="hour",
    )
    mv_store.store_baseline(con, b)
    mv_savings.compute_savings(con, b, START + timedelta(hours=12), START + timedelta(days=1))
    con.close()
    assert result.samples > 0
    return db


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's signature and IHDR chunk (validates both, and the IHDR CRC)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    ihdr = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(kind + ihdr) == crc
    width, height = struct.unpack(">II", ihdr[:8])
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"
    return width, height


def test_backfill_writes_samples_kpis_alerts_and_views(history: Path) -> None:
    with duckdb.connect(str(history), read_only=True) as con:
        _check_history(con)


def _check_history(con: duckdb.DuckDBPyConnection) -> None:
    n_samples, first, last = con.execute("SELECT count(*), min(ts), max(ts) FROM samples").fetchall()[0]
    assert first == START and last == START + timedelta(days=1) - timedelta(minutes=1)
    assert n_samples % 1440 == 0  # one reading of every tag per minute
    windows = dict(con.execute("SELECT window_secs, count(DISTINCT ts) FROM kpi GROUP BY 1").fetchall())
    assert windows == {60: 1440, 900: 96, 3600: 24}
    fa = con.execute(
        "SELECT avg(value) FILTER (WHERE hour < ?), avg(value) FILTER (WHERE hour >= ?) FROM v_kpi_hourly "
        "WHERE asset = 'kiln1' AND kpi = 'preheater_false_air_pct'",
        [START + timedelta(hours=14), START + timedelta(hours=15)],
    ).fetchone()
    assert fa is not None and fa[0] < 5 < 15 < fa[1]  # docs/kpis.md §8: good < 5 %, critical > 15 %
    rules = {r[0] for r in con.execute("SELECT rule FROM alerts WHERE asset = 'kiln1'").fetchall()}
    assert "kiln.false_air.critical" in rules
    assert con.execute("SELECT count(*) FROM alerts WHERE state = 'firing'").fetchone() == (0,)
    graded = con.execute("SELECT asset, asset_type FROM v_energy_grade ORDER BY asset").fetchall()
    assert graded == [("cement_mill1", "cement_mill"), ("kiln1", "kiln")]  # one day each


def test_report_has_every_section_and_decodable_images(history: Path, tmp_path: Path) -> None:
    con = storage.connect(history)
    out = write_report(
        con, site="plant1", start=START, end=START + timedelta(days=1), out_path=tmp_path / "r.html"
    )
    con.close()
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    alts = [alt for alt, _ in images]
    assert any(a.startswith("Specific heat") for a in alts)
    assert any(a.startswith("Clinker comprehensive energy") for a in alts)
    assert any(a.startswith("Specific electrical energy") for a in alts)
    assert any(a.startswith("baseline scatter cement_mill1-") for a in alts)
    assert any(a.startswith("CUSUM cement_mill1-") for a in alts)
    for _, data in images:
        w, h = _png_size(base64.b64decode(data))
        assert 300 < w < 2000 and 200 < h < 1500
    assert "http://" not in html and "https://" not in html and 'src="/' not in html  # self-contained
    # tables with content: grades of the day, the leak's alerts, the shifts of the day
    assert "kiln.false_air.critical" in html
    assert re.search(r"<td>2026-03-02</td><td>kiln1</td><td>kiln</td>", html)
    assert html.count("<td>06:00</td>") >= 1 and html.count("<td>14:00</td>") >= 1
    assert "GB 16780 coal grade" not in html  # legends live in the images, not as text
    assert "12 period(s), stored mv_savings rows" in html


def test_report_command_writes_the_file(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "week.html"
    assert (
        main(
            ["report", "--db", str(history), "--from", "2026-03-02", "--to", "2026-03-02", "--out", str(out)]
        )
        == 0
    )
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.stat().st_size > 50_000


def test_report_on_an_empty_period_says_so_instead_of_failing(history: Path, tmp_path: Path) -> None:
    con = storage.connect(history)
    out = write_report(
        con, site="plant1", start=datetime(2027, 1, 1, tzinfo=UTC), end=datetime(2027, 1, 2, tzinfo=UTC),
        out_path=tmp_path / "empty.html",
    )  # fmt: skip
    con.close()
    html = out.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    assert "No specific heat KPI in this period." in html
    assert "No alerts in this period." in html


def test_report_into_a_missing_directory_is_a_one_line_error(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["report", "--db", str(history), "--from", "2026-03-02", "--to", "2026-03-02",
         "--out", str(tmp_path / "nope" / "r.html")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "no such directory" in err and len(err.strip().splitlines()) == 1


def test_backfill_rejects_an_unknown_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    con = storage.connect(":memory:")
    with pytest.raises(BackfillError):
        backfill(con, days=0.1, scenario="volcano")
    rc = main(["backfill", "--db", str(tmp_path / "b.duckdb"), "--days", "0.01", "--scenario", "volcano"])
    err = capsys.readouterr().err
    assert rc == 2 and "volcano" in err and len(err.strip().splitlines()) == 1


def test_backfill_is_deterministic_for_a_seed_and_rerunnable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sums: list[tuple[int, float]] = []
    for name in ("a", "b", "a"):  # the third run repeats the first range: replaced, not doubled
        db = tmp_path / f"{name}.duckdb"
        rc = main(["backfill", "--db", str(db), "--days", "0.05", "--seed", "7", "--start", "2026-05-01"])
        assert rc == 0
        assert "backfilled" in capsys.readouterr().out
        with duckdb.connect(str(db), read_only=True) as con:
            sums.append(con.execute("SELECT count(*), sum(value) FROM samples").fetchall()[0])
    assert sums[0] == sums[1] == sums[2] and sums[0][0] > 0


def test_open_alert_is_counted_to_the_last_data_time_not_to_the_end_of_the_period(tmp_path: Path) -> None:
    """A 3-minute fault still open when the data ends is 0.05 h of alerting, not the requested hour."""
    from agent.report import alert_summary, last_data_time

    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    con = storage.connect(tmp_path / "k.duckdb")
    con.execute(
        "INSERT INTO samples SELECT t, 'plant1', 'kiln1.feed_tph', 300.0, 'good' "
        "FROM generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ, INTERVAL 1 SECOND) g(t)",
        [t0 - timedelta(minutes=10), t0 + timedelta(minutes=3)],
    )
    con.execute(
        "INSERT INTO alerts (alert_id, site, asset, rule, severity, state, started_at) "
        "VALUES ('a1', 'plant1', 'kiln1', 'kiln.false_air.high', 'warning', 'firing', ?)",
        [t0],
    )
    assert last_data_time(con, "plant1") == t0 + timedelta(minutes=3)
    row = alert_summary(con, "plant1", t0, t0 + timedelta(hours=1)).row(0, named=True)
    assert (row["episodes"], row["still_firing"]) == (1, 1)
    assert row["hours"] == pytest.approx(3 / 60)  # not 1.0: the requested hour runs past the data
    # a period that ends before the last data counts the open episode to the period's end
    assert alert_summary(con, "plant1", t0, t0 + timedelta(minutes=2))["hours"][0] == pytest.approx(2 / 60)
    con.close()
