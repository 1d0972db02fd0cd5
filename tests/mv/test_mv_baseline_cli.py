"""``kilnwatch baseline fit|show|savings`` reproduce docs/kpis.md §7 worked example 3 from a site database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mv_helpers import example3_daily_db, example3_monthly_kpi_db

from agent import storage
from agent.cli import main
from agent.mv_savings import savings_frame
from agent.mv_store import list_baselines


@pytest.fixture
def daily_db(tmp_path: Path) -> Path:
    """Samples only (a historian import): 10-min power_kw and feed_tph, one example month per day."""
    db = tmp_path / "site.duckdb"
    con = storage.connect(db)
    example3_daily_db(con)
    con.close()
    return db


def _fit(db: Path, *extra: str) -> int:
    return main(
        [
            "baseline",
            "fit",
            "--db",
            str(db),
            "--asset",
            "rawmill1",
            "--target",
            "power_kw",
            "--drivers",
            "feed_tph",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-12",
            *extra,
        ]
    )


def test_baseline_fit_reproduces_example3_from_samples_only(
    daily_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """830.7 + 15.34 P (MWh, kt) = 830,700 kWh + 15.34 kWh/t · P; R² 0.9821, adj 0.9803, CV 0.7982 %."""
    assert _fit(daily_db) == 0
    out = capsys.readouterr().out
    con = storage.connect(daily_db)
    (b,) = list_baselines(con)
    con.close()
    assert b.asset == "rawmill1" and b.target == "power_kw" and b.drivers == ("feed_tph",)
    assert b.n == 12
    assert b.unit == "kWh" and b.driver_units == ("t",)
    assert b.intercept == pytest.approx(830.7e3, rel=1e-4)
    assert b.coefficients[0] == pytest.approx(15.34, rel=1e-3)
    assert b.r2 == pytest.approx(0.9821, abs=5e-5)
    assert b.adj_r2 == pytest.approx(0.9803, abs=5e-5)
    assert b.cv_rmse == pytest.approx(0.7982, rel=1e-4)
    assert b.nmbe == pytest.approx(0.0, abs=1e-8)
    assert b.valid
    # the printed tables carry the same figures
    assert b.baseline_id in out
    assert "0.9821" in out and "0.9803" in out and "0.7982" in out
    assert "15.3406" in out


def test_baseline_fit_reproduces_example3_monthly_from_kpi_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "kpi.duckdb"
    con = storage.connect(db)
    example3_monthly_kpi_db(con)
    con.close()
    rc = main(
        [
            "baseline", "fit", "--db", str(db), "--asset", "rawmill1", "--target", "power_kw",
            "--drivers", "feed_tph", "--from", "2026-01", "--to", "2026-12", "--granularity", "month",
        ]
    )  # fmt: skip
    assert rc == 0
    con = storage.connect(db)
    (b,) = list_baselines(con)
    assert b.granularity == "month" and b.n == 12
    assert b.intercept == pytest.approx(830.7e3, rel=1e-4)
    assert b.coefficients[0] == pytest.approx(15.34, rel=1e-3)
    assert b.cv_rmse == pytest.approx(0.7982, rel=1e-4)
    con.close()
    capsys.readouterr()
    rc = main(
        [
            "baseline",
            "savings",
            "--db",
            str(db),
            "--id",
            b.baseline_id,
            "--from",
            "2027-01",
            "--to",
            "2027-03",
        ]
    )
    assert rc == 0
    con = storage.connect(db)
    s = savings_frame(con, b.baseline_id)
    assert s["avoided"].to_list() == pytest.approx([105.5e3, 180.6e3, 108.7e3], abs=60)
    assert s["cumulative_avoided"].to_list() == pytest.approx([105.5e3, 286.0e3, 394.8e3], abs=60)
    con.close()
    assert "3.466 %" in capsys.readouterr().out


def test_baseline_savings_stores_example3_savings_and_cusum(
    daily_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Savings [105.5, 180.6, 108.7] MWh, CUSUM [105.5, 286.0, 394.8] MWh, 3.466 % (docs/kpis.md §7)."""
    assert _fit(daily_db) == 0
    con = storage.connect(daily_db)
    (b,) = list_baselines(con)
    con.close()
    capsys.readouterr()
    rc = main(["baseline", "savings", "--db", str(daily_db), "--id", b.baseline_id, "--to", "2026-01-15"])
    assert rc == 0
    out = capsys.readouterr().out
    con = storage.connect(daily_db)
    s = savings_frame(con, b.baseline_id)
    con.close()
    assert s.height == 3
    assert s["expected"].to_list() == pytest.approx([3745e3, 3976e3, 3669e3], rel=2e-4)
    assert s["avoided"].to_list() == pytest.approx([105.5e3, 180.6e3, 108.7e3], abs=60)
    assert s["cumulative_avoided"].to_list() == pytest.approx([105.5e3, 286.0e3, 394.8e3], abs=60)
    assert s["unit"].unique().to_list() == ["kWh"]
    assert "3.466 %" in out
    # re-running replaces, never duplicates
    assert (
        main(["baseline", "savings", "--db", str(daily_db), "--id", b.baseline_id, "--to", "2026-01-15"]) == 0
    )
    con = storage.connect(daily_db)
    assert savings_frame(con, b.baseline_id).height == 3
    con.close()


def test_baseline_savings_excludes_a_stopped_mill_and_says_so(
    daily_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Day 13 stopped (feed and power 0): no 830.7 MWh intercept credited; output names the exclusion."""
    assert _fit(daily_db) == 0
    con = storage.connect(daily_db)
    (b,) = list_baselines(con)
    con.execute("UPDATE samples SET value = 0 WHERE ts >= '2026-01-13' AND ts < '2026-01-14'")
    con.close()
    capsys.readouterr()
    rc = main(["baseline", "savings", "--db", str(daily_db), "--id", b.baseline_id, "--to", "2026-01-15"])
    assert rc == 0
    out = " ".join(capsys.readouterr().out.split())
    con = storage.connect(daily_db)
    s = savings_frame(con, b.baseline_id)
    con.close()
    assert s["avoided"].to_list()[0] is None
    assert s["avoided"].to_list()[1:] == pytest.approx([180.6e3, 108.7e3], abs=60)
    assert "1 period(s) excluded from savings: asset stopped" in out


def test_baseline_show_lists_stored_models(daily_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["baseline", "show", "--db", str(daily_db)]) == 0
    assert "no baselines stored" in capsys.readouterr().out
    assert _fit(daily_db) == 0
    capsys.readouterr()
    assert main(["baseline", "show", "--db", str(daily_db)]) == 0
    out = capsys.readouterr().out
    assert "rawmill1" in out and "0.982" in out and "power_kw" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "no_such_kpi"], "no data for 'no_such_kpi'"),
        (["--from", "01/02/2026"], "is not YYYY-MM-DD"),
        (["--to", "2025-12-01"], "--to must be after --from"),
    ],
)
def test_baseline_fit_bad_input_gives_one_line_and_nonzero_exit(
    daily_db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = {
        "--target": "power_kw",
        "--from": "2026-01-01",
        "--to": "2026-01-12",
    }
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = v
    argv = ["baseline", "fit", "--db", str(daily_db), "--asset", "rawmill1", "--drivers", "feed_tph"]
    for k, v in base.items():
        argv += [k, v]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_missing_database_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["baseline", "show", "--db", str(tmp_path / "nope.duckdb")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.strip() == f"kilnwatch baseline: {tmp_path / 'nope.duckdb'}: no such database file"


def test_not_a_database_file_is_a_one_line_error_in_a_real_process(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("this is not a database\n" * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "report", "--db", str(bogus), "--from", "2026-01-01", "--to", "2026-01-02",
         "--out", str(tmp_path / "r.html")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2  # a damaged or foreign file: nothing to retry (agent/storage.py)
    assert "cannot open as a DuckDB database" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_unknown_baseline_id_is_a_one_line_error(daily_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["baseline", "savings", "--db", str(daily_db), "--id", "nope-1234"])
    err = capsys.readouterr().err
    assert rc == 1 and "no baseline with id 'nope-1234'" in err
