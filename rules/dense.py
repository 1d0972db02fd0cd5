"""Tag statistics per window, and the same statistics as dense (window x tag) NumPy arrays.

Owns the first step of every KPI: per window and tag, the sum and count of ``good`` samples, the
count of all samples and the time of the last good sample (:func:`tag_stats` as a Polars plan,
:class:`DenseStats` as arrays), how a site's role tags index those arrays (:class:`TagIndex`), and
how the tags of a role combine into one signal (:func:`combine_roles`, docs/kpis.md §6).

Separate from the KPI formulas (rules/stages.py) because this is where the data volume is: a day
of samples is reduced here to one row per minute and tag, with NumPy scatter/``bincount`` and
reductions (rolling, coarsening) instead of Polars group-bys; see docs/libraries.md for why the
input is aggregated in one pass without sorting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import polars as pl

from rules.stages import SMALL_ENGINE

# ------------------------------------------------------------------------------------ tag statistics
_MINUTE_US = 60_000_000
#: "no good sample" in ``last_good`` arrays
_NO_TIME: Final = int(np.iinfo(np.int64).min)


def good_sample() -> pl.Expr:
    """Only ``good`` samples with a finite value count towards a KPI."""
    v = pl.col("value")
    return (pl.col("quality") == "good") & v.is_not_null() & v.is_finite()


def tag_stats(
    samples: pl.DataFrame | pl.LazyFrame,
    window_secs: int,
    *,
    label: int | None = None,
    last_good: bool = True,
) -> pl.LazyFrame:
    """Per UTC-aligned window (``window`` = start, epoch microseconds) and tag: good sum and count.

    ``label``: put every row in one window with this start instead (a trailing window at "now").
    ``last_good``: also the time of the last good sample (staleness; NULL when not asked for).
    ``tag`` may be a String, Categorical or Enum column; ``quality`` a String or Enum column. The
    input is aggregated in one pass without sorting (docs/libraries.md: keep data time-major).
    """
    us = int(window_secs * 1_000_000)
    good = good_sample()
    ts_us = pl.col("ts").dt.epoch("us")
    key = pl.lit(label, dtype=pl.Int64) if label is not None else ts_us // us * us
    # Plain aggregations over pre-masked columns hit Polars' fast paths (2-3x faster than .filter()).
    gt = pl.when(good).then(ts_us) if last_good else pl.lit(None, dtype=pl.Int64)
    lf = samples.lazy()
    # For big String frames, hashing a dictionary code beats hashing the string (~40 % faster on a
    # day of data); for a tick's few hundred thousand rows the cast costs more than it saves.
    big = isinstance(samples, pl.DataFrame) and samples.height > 2_000_000
    dtype = lf.collect_schema()["tag"]
    tag = pl.col("tag").cast(pl.Categorical) if big and dtype == pl.String else pl.col("tag")
    out = (
        lf.select(key.alias("window"), tag, pl.when(good).then(pl.col("value")).alias("_gv"), gt.alias("_gt"))
        .group_by("window", "tag")
        .agg(
            pl.col("_gv").sum().alias("sum"),
            pl.col("_gv").count().cast(pl.Int64).alias("n_good"),
            pl.len().cast(pl.Int64).alias("n_total"),
            pl.col("_gt").max().alias("last_good"),
        )
    )
    # Enum tags stay Enum: their codes index the model's tag list without a string join
    return out if isinstance(dtype, pl.Enum) else out.with_columns(pl.col("tag").cast(pl.String))


def combine_roles(
    mean: npt.NDArray[np.float64], gf: npt.NDArray[np.float64], gather: npt.NDArray[np.intp], how: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Role values (windows x assets) from tag means: ``gather`` is (assets x K) tag indices, -1 = none.

    A role is NULL (NaN) when any of its tags has no value; its good fraction is the smallest of its
    tags'; an asset without the role gets NaN for both.
    """
    pad = gather < 0
    idx = np.where(pad, 0, gather)
    vals = mean[:, idx]  # windows x assets x K
    real = ~pad[None, :, :]
    k = (~pad).sum(axis=1)
    missing = (np.isnan(vals) & real).any(axis=2)
    if how == "max":
        out = np.where(real, vals, -np.inf).max(axis=2)
    else:
        out = np.where(real, vals, 0.0).sum(axis=2)
        if how == "mean":
            with np.errstate(divide="ignore", invalid="ignore"):
                out = out / k[None, :]
    out[missing] = np.nan
    out[:, k == 0] = np.nan
    good = np.where(real, gf[:, idx], np.inf).min(axis=2)
    good[:, k == 0] = np.nan
    return out, good


@dataclass(frozen=True, slots=True)
class DenseStats:
    """Tag statistics as (window x tag) arrays over the model's role tags (sorted by name)."""

    windows: npt.NDArray[np.int64]
    sum: npt.NDArray[np.float64]
    n_good: npt.NDArray[np.float64]
    n_total: npt.NDArray[np.float64]
    last_good: npt.NDArray[np.int64]

    @staticmethod
    def empty(windows: npt.NDArray[np.int64], n_tags: int) -> DenseStats:
        """These windows with no samples yet (arrays to scatter into)."""
        shape = (len(windows), n_tags)
        return DenseStats(
            windows,
            np.zeros(shape),
            np.zeros(shape),
            np.zeros(shape),
            np.full(shape, _NO_TIME, dtype=np.int64),
        )

    @staticmethod
    def zeros(n_tags: int, window: int = 0) -> DenseStats:
        """One window with no samples."""
        return DenseStats.empty(np.asarray([window], dtype=np.int64), n_tags)

    def row(self, i: int) -> DenseStats:
        """Window ``i`` alone (a view)."""
        return DenseStats(
            self.windows[i : i + 1],
            self.sum[i : i + 1],
            self.n_good[i : i + 1],
            self.n_total[i : i + 1],
            self.last_good[i : i + 1],
        )

    def merged(self, other: DenseStats) -> DenseStats:
        """Both windows' samples together: sums and counts add, the last good sample is the later."""
        return DenseStats(
            self.windows,
            self.sum + other.sum,
            self.n_good + other.n_good,
            self.n_total + other.n_total,
            np.maximum(self.last_good, other.last_good),
        )

    def counts_minus(self, other: DenseStats) -> DenseStats:
        """Sums and counts without ``other``'s (a minute leaving a rolling window); no last good."""
        return DenseStats(
            self.windows,
            self.sum - other.sum,
            self.n_good - other.n_good,
            self.n_total - other.n_total,
            np.full_like(self.last_good, _NO_TIME),
        )

    def counts_only(self) -> DenseStats:
        return DenseStats(
            self.windows, self.sum, self.n_good, self.n_total, np.full_like(self.last_good, _NO_TIME)
        )

    def with_last_good(self, other: DenseStats) -> DenseStats:
        """These sums with the later of both last good samples (staleness of a rolling window)."""
        return DenseStats(
            self.windows, self.sum, self.n_good, self.n_total, np.maximum(self.last_good, other.last_good)
        )

    def labelled(self, label: int) -> DenseStats:
        return DenseStats(
            np.asarray([label], dtype=np.int64), self.sum, self.n_good, self.n_total, self.last_good
        )

    def rolling(self, n: int) -> DenseStats:
        """Sums over the last ``n`` windows ending with each one (cumulative-sum differences)."""

        def roll(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            cs = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
            hi = np.arange(1, x.shape[0] + 1)
            return np.asarray(cs[hi] - cs[np.maximum(hi - n, 0)])

        return DenseStats(self.windows, roll(self.sum), roll(self.n_good), roll(self.n_total), self.last_good)

    @staticmethod
    def stack(parts: Sequence[DenseStats | None], order: Sequence[int]) -> DenseStats:
        """One DenseStats of several, rows sorted by window (the labels in ``order``)."""
        got = [p for p in parts if p is not None]
        windows = np.concatenate([p.windows for p in got])
        idx = np.argsort(windows, kind="stable")
        assert windows[idx].tolist() == list(order), "each label exactly once"
        return DenseStats(
            windows[idx],
            np.vstack([p.sum for p in got])[idx],
            np.vstack([p.n_good for p in got])[idx],
            np.vstack([p.n_total for p in got])[idx],
            np.vstack([p.last_good for p in got])[idx],
        )

    def coarsen(self, window_secs: int) -> DenseStats:
        """Statistics of the UTC-aligned ``window_secs`` windows these (finer, sorted) windows fall in.

        Sums and counts add and the last good sample is the latest, so a 15-min or hourly window is
        a reduction of its minutes: no second pass over samples, no group-by.
        """
        wus = window_secs * 1_000_000
        coarse = self.windows // wus * wus
        if len(coarse) == 0:
            return self
        starts = np.flatnonzero(np.r_[True, coarse[1:] != coarse[:-1]])
        return DenseStats(
            coarse[starts],
            np.add.reduceat(self.sum, starts, axis=0),
            np.add.reduceat(self.n_good, starts, axis=0),
            np.add.reduceat(self.n_total, starts, axis=0),
            np.maximum.reduceat(self.last_good, starts, axis=0),
        )


@dataclass(frozen=True, slots=True)
class TagIndex:
    """A site's role tags as the columns of :class:`DenseStats` arrays, and the scatter into them.

    Tags are sorted by name and numbered once per configuration; :attr:`enum` is that list as a Polars
    Enum whose codes *are* the column index, so a window whose ``tag`` has this dtype (how the agent
    builds it) is counted without hashing a string. Tags no role uses have no column.
    """

    tags: tuple[str, ...]
    #: tag -> column
    position: dict[str, int]
    #: the tags as an Enum whose codes are the column index (what the agent's window uses)
    enum: pl.Enum
    #: ``tag`` (String) -> ``_ti`` (column), for joining statistics whose tag is not an Enum
    frame: pl.DataFrame

    @staticmethod
    def of(tags: Iterable[str]) -> TagIndex:
        """The index of these tags (duplicates once, sorted by name)."""
        ordered = tuple(sorted(set(tags)))
        return TagIndex(
            tags=ordered,
            position={t: i for i, t in enumerate(ordered)},
            enum=pl.Enum(list(ordered)),
            frame=pl.DataFrame(
                {
                    "tag": pl.Series(list(ordered), dtype=pl.String),
                    "_ti": np.arange(len(ordered), dtype=np.int64),
                }
            ),
        )

    def window_stats(self, rows: pl.DataFrame, label: int) -> DenseStats:
        """Statistics of all ``rows`` as one window labelled ``label`` (a tick's raw windows)."""
        return self.binned_stats(rows, None).labelled(label)

    def binned_stats(self, rows: pl.DataFrame, window_secs: int | None = 60) -> DenseStats:
        """Per UTC-aligned ``window_secs`` window (None: all rows in one) of ``rows``: dense statistics.

        ``rows`` has ``tag`` as :attr:`enum`, whose codes are the dense index: the key (window,
        code) is counted with three ``bincount`` and one ``maximum.at`` - over a minute of 10k tags
        (600k rows) ~6 ms where a group-by takes ~13. Windows without rows are left out.
        """
        n_t = len(self.tags)
        rows = self.with_tag_enum(rows)
        if rows.height == 0 and window_secs is None:
            return DenseStats.zeros(n_t)
        if rows.height == 0:
            return DenseStats.empty(np.empty(0, dtype=np.int64), n_t)
        c = rows.get_column("tag").to_physical().to_numpy().astype(np.intp)  # bincount wants intp
        ts = rows.get_column("ts").dt.epoch("us").to_numpy()
        if window_secs is None:
            wins, key, n_w = np.zeros(1, dtype=np.int64), c, 1
        else:
            wus = window_secs * 1_000_000
            wi = ts // wus
            lo = int(wi.min())
            n_w = int(wi.max()) - lo + 1
            key = (wi - lo) * n_t + c
            wins = (lo + np.arange(n_w, dtype=np.int64)) * wus
        good = rows.select(good_sample()).to_series().to_numpy()
        gv = np.where(good, rows.get_column("value").to_numpy(), 0.0)
        last = np.full(n_w * n_t, _NO_TIME, dtype=np.int64)
        np.maximum.at(last, key, np.where(good, ts, _NO_TIME))
        shape = (n_w, n_t)
        d = DenseStats(
            windows=wins,
            sum=np.asarray(np.bincount(key, gv, n_w * n_t), dtype=np.float64).reshape(shape),
            n_good=np.asarray(np.bincount(key, good, n_w * n_t), dtype=np.float64).reshape(shape),
            n_total=np.asarray(np.bincount(key, None, n_w * n_t), dtype=np.float64).reshape(shape),
            last_good=last.reshape(shape),
        )
        if n_w == 1:
            return d
        seen = np.flatnonzero(d.n_total.sum(axis=1) > 0)
        return DenseStats(d.windows[seen], d.sum[seen], d.n_good[seen], d.n_total[seen], d.last_good[seen])

    def with_tag_enum(self, frame: pl.DataFrame, *, drop_unknown: bool = True) -> pl.DataFrame:
        """``frame`` with ``tag`` as :attr:`enum` (codes = dense tag index).

        Tags no role uses become NULL: dropped, or kept when ``drop_unknown`` is False (a filter
        copies every column - too dear for a day of samples, where NULL codes go to a spare bin).
        """
        if frame.schema["tag"] == self.enum:
            return frame
        out = frame.with_columns(pl.col("tag").cast(pl.String).cast(self.enum, strict=False))
        return out.filter(pl.col("tag").is_not_null()) if drop_unknown else out

    def dense_minutes(self, samples: pl.DataFrame) -> DenseStats:
        """1-min statistics of a big, non-empty sample frame, straight into (minute x tag) arrays.

        A ``tag`` that is not an Enum is cast once to :attr:`enum` (~0.55 s for 43 M strings,
        which buys this path: 2.1 s -> ~1.5 s for a day of 500 tags). Time-ordered input
        (how a backfill reads ``samples``, and how the agent writes them) is cut into minutes by
        binary search and each minute's codes are counted with ``np.bincount`` into a row of a
        (minute x category) array: no hashing, about 25 % faster than a group-by, and only a slab of
        minutes is materialised at a time. Otherwise one streaming group-by on a single integer key
        (minute index x tag code). ``last_good`` is not kept (history has no "now" to be stale against).
        """
        dtype = samples.schema["tag"]
        if not isinstance(dtype, pl.Enum):
            samples = self.with_tag_enum(samples, drop_unknown=False)
            dtype = self.enum
        lookup = self.tag_lookup(dtype)
        n_cat, n_t = len(lookup), len(self.tags)
        ts = samples.get_column("ts").dt.epoch("us")
        m0, m1 = cast(int, ts.min()) // _MINUTE_US, cast(int, ts.max()) // _MINUTE_US
        wins = np.arange(m0, m1 + 1, dtype=np.int64) * _MINUTE_US
        n_w = len(wins)
        good = good_sample()
        if ts.is_sorted():
            sums, n_good, n_total = (np.zeros((n_w, n_cat + 1)) for _ in range(3))
            bounds = np.append(wins, wins[-1] + _MINUTE_US)
            # on the Series: a frame read from Arrow/DuckDB has many chunks, and to_numpy would copy them
            edges = ts.search_sorted(pl.Series(bounds)).cast(pl.Int64).to_numpy()
            slab = 64  # minutes per materialised slab: 64 x 500 tags x 60 s = 1.9 M rows
            code = pl.col("tag").to_physical()
            if samples.get_column("tag").null_count():
                code = code.fill_null(n_cat)  # not a category (a String cast to the Enum): spare bin

            def prepare(i0: int) -> tuple[npt.NDArray[Any], ...]:
                a, b = int(edges[i0]), int(edges[min(i0 + slab, n_w)])
                part = samples.slice(a, b - a).select(
                    code.alias("c"),
                    pl.when(good).then(pl.col("value")).otherwise(0.0).alias("gv"),
                    good.cast(pl.Float64).alias("g"),
                )
                return tuple(part.get_column(x).to_numpy() for x in ("c", "gv", "g"))

            # Polars prepares the next slab (GIL released) while NumPy counts this one
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kw-slab") as pool:
                ahead = pool.submit(prepare, 0)
                for i0 in range(0, n_w, slab):
                    c, gv, g = ahead.result()
                    if i0 + slab < n_w:
                        ahead = pool.submit(prepare, i0 + slab)
                    a = int(edges[i0])
                    for i in range(i0, min(i0 + slab, n_w)):
                        lo, hi = int(edges[i]) - a, int(edges[i + 1]) - a
                        cc = c[lo:hi]
                        sums[i] = np.bincount(cc, gv[lo:hi], n_cat + 1)
                        n_good[i] = np.bincount(cc, g[lo:hi], n_cat + 1)
                        n_total[i] = np.bincount(cc, None, n_cat + 1)
            used = np.flatnonzero(lookup >= 0)
            d = DenseStats.empty(wins, n_t)
            d.sum[:, lookup[used]] = sums[:, used]
            d.n_good[:, lookup[used]] = n_good[:, used]
            d.n_total[:, lookup[used]] = n_total[:, used]
            return d
        ts_us = pl.col("ts").dt.epoch("us")
        key = (ts_us // _MINUTE_US - m0) * n_cat + pl.col("tag").to_physical().cast(pl.Int64)
        st = (
            samples.lazy()
            .filter(pl.col("tag").is_not_null())
            .select(key.alias("k"), pl.when(good).then(pl.col("value")).alias("_gv"))
            .group_by("k")
            .agg(
                pl.col("_gv").sum().alias("sum"),
                pl.col("_gv").count().alias("n_good"),
                pl.len().alias("n_total"),
            )
            .collect()
        )
        d = DenseStats.empty(wins, n_t)
        k = st.get_column("k").to_numpy()
        ti = lookup[k % n_cat]
        keep = ti >= 0
        wi, ti = k[keep] // n_cat, ti[keep]
        d.sum[wi, ti] = st.get_column("sum").fill_null(0.0).to_numpy()[keep]
        d.n_good[wi, ti] = st.get_column("n_good").to_numpy()[keep]
        d.n_total[wi, ti] = st.get_column("n_total").to_numpy()[keep]
        return d

    def dense_stats(
        self, stats: pl.LazyFrame | pl.DataFrame, windows: Iterable[int] | pl.Series
    ) -> DenseStats:
        """Tag statistics scattered into (window x tag) arrays over the model's role tags."""
        wins = np.fromiter((int(w) for w in windows), dtype=np.int64)
        n_w, n_t = len(wins), len(self.tags)
        d = DenseStats.empty(wins, n_t)
        lf = stats.lazy()
        dtype = lf.collect_schema()["tag"]
        if isinstance(dtype, pl.Enum):
            # dictionary codes -> the model's tag index through a lookup array (-1: not a role tag)
            lookup = self.tag_lookup(dtype)
            st = lf.select(
                "window",
                pl.col("tag").to_physical().alias("_code"),
                "sum",
                "n_good",
                "n_total",
                "last_good",
            ).collect(engine=SMALL_ENGINE)
            ti_all = lookup[st.get_column("_code").to_numpy()]
            st = st.with_columns(pl.Series("_ti", ti_all)).filter(pl.col("_ti") >= 0)
        else:
            st = (
                lf.join(self.frame.lazy(), on="tag", how="inner")
                .select("window", "_ti", "sum", "n_good", "n_total", "last_good")
                .collect(engine=SMALL_ENGINE)
            )
        if st.height == 0 or n_w == 0:
            return d
        w = st.get_column("window").to_numpy()
        wi = np.clip(np.searchsorted(wins, w), 0, n_w - 1)
        keep = wins[wi] == w
        wi, ti = wi[keep], st.get_column("_ti").to_numpy()[keep]
        d.sum[wi, ti] = st.get_column("sum").fill_null(0.0).to_numpy()[keep]
        d.n_good[wi, ti] = st.get_column("n_good").to_numpy()[keep]
        d.n_total[wi, ti] = st.get_column("n_total").to_numpy()[keep]
        d.last_good[wi, ti] = st.get_column("last_good").fill_null(np.iinfo(np.int64).min).to_numpy()[keep]
        return d

    def tag_lookup(self, dtype: pl.Enum) -> npt.NDArray[np.intp]:
        """Dense tag index of every category of an Enum tag column (-1 for tags no role uses)."""
        cats = tuple(dtype.categories.to_list())
        if cats == self.tags:
            return np.arange(len(cats), dtype=np.intp)
        index = self.position
        return np.fromiter((index.get(c, -1) for c in cats), dtype=np.intp, count=len(cats))
