"""Backfill of simulated history, and the HTML report generated from it."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
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
    assert re.search(r'<td class="txt">2026-03-02</td><td class="txt">kiln1</td><td class="txt">kiln</td>', html)
    assert html.count('<td class="txt">06:00</td>') >= 1 and html.count('<td class="txt">14:00</td>') >= 1
    assert "GB 16780 coal grade" not in html  # legends live in the images, not as text
    with duckdb.connect(str(history), read_only=True) as ro:
        row = ro.execute("SELECT count(*) FROM mv_savings WHERE avoided IS NOT NULL").fetchone()
    assert row is not None and row[0] >= 3  # hours with the mill's feed inside the baseline's range
    assert f"{row[0]} period(s), stored mv_savings rows" in html


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


# --------------------------------------------------------------------------------------------
# chart windows and axes by period length, shifts of short periods, readability (auditor issue)


def _report_html(db: Path, tmp_path: Path, start: datetime, end: datetime) -> str:
    con = storage.connect(db)
    out = write_report(con, site="plant1", start=start, end=end, out_path=tmp_path / "r.html")
    con.close()
    return out.read_text(encoding="utf-8")


def _drawn(chart: object) -> tuple[object, object]:
    """(figure, axes) of a trend chart, laid out (constrained layout runs on draw)."""
    from agent.report_charts import TrendChart, trend_figure

    assert isinstance(chart, TrendChart)
    fig = trend_figure(chart)
    fig.draw_without_rendering()
    return fig, fig.axes[0]


def test_trend_resolution_follows_the_period_length() -> None:
    from agent.report_charts import trend_resolution

    def label(hours: float) -> str:
        return trend_resolution(START, START + timedelta(hours=hours)).label

    assert label(2) == label(23.9) == "1-min values"
    assert label(24) == label(72) == "15-min means"
    assert label(73) == label(14 * 24) == "hourly means"
    assert label(14 * 24 + 1) == "daily means"


def test_two_hour_report_has_a_line_in_every_chart_and_the_running_shift(history: Path, tmp_path: Path) -> None:
    """10:00-12:00 lies inside the 06:00 shift: once there were empty charts and "No shift data"."""
    from matplotlib.dates import num2date

    from agent.report_charts import TREND_KPIS, trend_charts

    start, end = START + timedelta(hours=10), START + timedelta(hours=12)
    con = storage.connect(history)
    charts = trend_charts(con, "plant1", start, end)
    con.close()
    assert [c.kpi for c in charts] == list(TREND_KPIS)
    for chart in charts:
        assert chart.resolution.label == "1-min values" and chart.series
        for series in chart.series:
            assert len(series.t) == 120 and all(start <= t < end for t in series.t)
        _, ax = _drawn(chart)
        drawn = [line for line in ax.get_lines() if line.get_label() in {s.label for s in chart.series}]
        assert len(drawn) == len(chart.series) and all(len(line.get_xdata()) == 120 for line in drawn)
        lo, hi = (num2date(x) for x in ax.get_xlim())
        assert start - timedelta(minutes=2) < lo <= start and end - timedelta(minutes=1) <= hi < end + timedelta(minutes=1)
    html = _report_html(history, tmp_path, start, end)
    assert "No shift data" not in html and "No KPI rows" not in html
    shifts = html[html.index('<section id="shifts">') :]
    assert '<td class="txt">2026-03-02 06:00</td><td class="txt">06:00</td><td class="txt">kiln1</td>' in shifts
    assert "14:00</td>" not in shifts and "22:00</td>" not in shifts  # only the shift running then
    assert "<p>No graded KPI rows" not in html  # the grades of the day the period lies in


def test_shift_rows_are_the_shifts_overlapping_the_period(history: Path) -> None:
    from agent.report import shift_rows

    con = storage.connect(history)

    def shifts(h0: float, h1: float) -> list[str]:
        rows = shift_rows(con, "plant1", START + timedelta(hours=h0), START + timedelta(hours=h1))
        return [f"{t:%d %H:%M}" for t in rows.filter(pl.col("asset") == "kiln1")["shift_start"]]

    assert shifts(13, 15) == ["02 06:00", "02 14:00"]
    assert shifts(0, 2) == ["01 22:00"]  # 00:00-06:00 belongs to the 22:00 shift of the day before
    assert shifts(6, 6.5) == ["02 06:00"]
    assert shifts(0, 24) == ["01 22:00", "02 06:00", "02 14:00", "02 22:00"]
    con.close()


def test_fourteen_day_report_draws_hourly_points_over_the_data_not_the_period(
    history: Path, tmp_path: Path
) -> None:
    from matplotlib.dates import num2date

    from agent.report_charts import trend_charts

    end = START + timedelta(days=14)
    con = storage.connect(history)
    charts = trend_charts(con, "plant1", START, end)
    con.close()
    for chart in charts:
        assert chart.resolution.label == "hourly means"
        assert chart.series and all(len(s.t) == 24 for s in chart.series)
        _, ax = _drawn(chart)
        lo, hi = (num2date(x) for x in ax.get_xlim())
        assert START - timedelta(hours=1) < lo and hi < START + timedelta(days=1)  # not the 14 days
    html = _report_html(history, tmp_path, START, end)
    assert "No shift data" not in html and html.count("<img ") >= 5


def test_a_single_point_is_drawn_as_a_marker_on_a_narrow_axis(history: Path) -> None:
    from matplotlib.dates import num2date

    from agent.report_charts import trend_chart

    con = storage.connect(history)
    chart = trend_chart(con, "plant1", "specific_heat_kcal_per_kg_clinker", START, START + timedelta(days=30))
    con.close()
    assert chart.resolution.label == "daily means" and [len(s.t) for s in chart.series] == [1]
    _, ax = _drawn(chart)
    (line,) = (line for line in ax.get_lines() if line.get_label() == "kiln1")
    assert line.get_marker() not in (None, "None", "", " ") and len(line.get_xdata()) == 1
    lo, hi = (num2date(x) for x in ax.get_xlim())
    assert START - timedelta(days=1) < lo < START < hi < START + timedelta(days=1)


def test_series_differ_by_line_style_and_marker_and_the_legend_is_outside_the_plot(history: Path) -> None:
    """kiln1 and coal_mill1 both run at about 21 kWh/t: colour alone did not tell them apart."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from agent.report_charts import trend_chart

    con = storage.connect(history)
    chart = trend_chart(con, "plant1", "specific_power_kwh_per_t", START, START + timedelta(days=1))
    con.close()
    assert {"kiln1", "coal_mill1"} <= {s.label for s in chart.series}
    fig, ax = _drawn(chart)
    lines = [line for line in ax.get_lines() if line.get_label() in {s.label for s in chart.series}]
    styles = {(line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(styles) == len(lines) == len(chart.series)
    legend = ax.get_legend()
    assert legend is not None
    renderer = FigureCanvasAgg(fig).get_renderer()
    box, plot = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.x0 >= plot.x1  # to the right of the plot area: it covers no data
    assert box.x1 <= fig.bbox.x1 + 1  # and still inside the image


def test_table_text_columns_are_left_aligned_and_numbers_right_aligned(history: Path, tmp_path: Path) -> None:
    html = _report_html(history, tmp_path, START, START + timedelta(days=1))
    css = html[html.index("<style>") : html.index("</style>")]
    assert re.search(r"th,td\{[^}]*text-align:left", css) and re.search(r"td\.num[^{]*\{text-align:right", css)
    cells = re.findall(r'<td class="(num|txt)">(.*?)</td>', html)
    assert len(cells) > 100 and not re.search(r"<td>|<td (?!class=\"(num|txt)\")", html)
    text = {v for c, v in cells if c == "txt"}
    numbers = [v for c, v in cells if c == "num"]
    assert {"kiln1", "cement_mill1", "kiln.false_air.critical", "06:00", "2026-03-02"} <= text
    assert all(re.fullmatch(r"[-\d,.]+ ?%?|–|[-\d,.]+ <span class=\"g\d\">.*</span>", v) for v in numbers), numbers
    assert not any(re.fullmatch(r"[-\d,.]+", v) for v in text if not re.fullmatch(r"\d{4}-\d\d-\d\d", v))


def _chromium() -> str | None:
    import shutil

    return next((p for n in ("chromium", "chromium-browser") if (p := shutil.which(n))), None)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium on this machine (Debian package chromium)")
@pytest.mark.parametrize(("label", "hours"), [("two hours", 2), ("fourteen days", 14 * 24)])
def test_report_screenshot_in_a_real_browser_shows_every_chart(
    history: Path, tmp_path: Path, label: str, hours: int
) -> None:
    """The short-period and the 14-day report rendered by headless Chromium: a full-size screenshot
    with drawn content (the data in each chart is checked by the trend-chart tests above)."""
    import subprocess

    from matplotlib.image import imread

    start = START + timedelta(hours=10) if hours == 2 else START
    con = storage.connect(history)
    page = write_report(con, site="plant1", start=start, end=start + timedelta(hours=hours), out_path=tmp_path / "r.html")
    con.close()
    shot = tmp_path / "shot.png"
    browser = _chromium()
    assert browser is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run(
        [browser, *flags, "--hide-scrollbars", "--window-size=1280,6000", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    assert _png_size(shot.read_bytes()) == (1280, 6000), label
    pixels = imread(shot)
    inked = (pixels[..., :3] < 0.9).any(axis=-1).mean()
    assert inked > 0.02, f"{label}: the page is almost blank ({inked:.1%} of pixels drawn)"
    assert page.read_text(encoding="utf-8").count("<img ") >= 3, label
