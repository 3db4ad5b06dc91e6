"""What the benchmark makes of its contenders' results: correctness, table rows, polyfis details, targets.

* :func:`correctness`: polyfis (engine, HTTP, batch) and rasterio + numpy against rasterstats, per polygon,
  date, band and statistic, relative tolerance :data:`REL_TOL`;
* :func:`case_rows`: one row per contender and case with throughput and ratios to the I/O floor,
  rasterstats and exactextract;
* :func:`polyfis_details`: the cold, warm, start-up and model figures of the polyfis single cases;
* :func:`targets`: the performance targets, each met or a gap;
* :func:`failures`: what makes the run fail (a polyfis path that differs from rasterstats or did not run).
"""

from __future__ import annotations

import statistics
from typing import Any

from perf_job import LABELS, Values, contenders

REL_TOL = 1e-9
#: The contenders whose values are compared with rasterstats.
COMPARED: tuple[str, ...] = ("polyfis_engine", "polyfis_http", "polyfis_compute_batch", "polyfis_run_batch",
                             "rasterio_numpy")

#: Results of a run: case -> contender -> result.
Results = dict[str, dict[str, dict[str, Any]]]


def compare(candidate: dict[str, Values], reference: dict[str, Values], *, complete: bool = True) -> dict[str, Any]:
    """Compare every statistic of ``reference`` with ``candidate`` (relative tolerance :data:`REL_TOL`).

    With ``complete=False`` (a candidate measured on a subset of the dates) missing dates are skipped.
    """
    compared, missing, failed = 0, 0, 0
    max_abs, max_rel = 0.0, 0.0
    for fid, dates in reference.items():
        for date, bands in dates.items():
            for band, ref in bands.items():
                got = candidate.get(fid, {}).get(date, {}).get(band)
                if got is None:
                    if complete or date in candidate.get(fid, {}):
                        missing += 1
                    continue
                for a, b in zip(got, ref):
                    compared += 1
                    diff = abs(a - b)
                    rel = diff / max(abs(b), 1e-300)
                    max_abs, max_rel = max(max_abs, diff), max(max_rel, rel)
                    failed += rel > REL_TOL
    ok = compared > 0 and missing == 0 and failed == 0
    return {"compared_values": compared, "missing_band_dates": missing, "failed_values": failed,
            "max_abs_diff": max_abs, "max_rel_diff": max_rel, "result": "PASS" if ok else "FAIL"}


def correctness(results: Results, samples: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One entry per case and compared contender: its values against rasterstats', or ``not run``."""
    out = []
    for case, by_name in results.items():
        reference = by_name.get("rasterstats", {}).get("values")
        for name in COMPARED:
            outcome = by_name.get(name)
            if outcome is None:
                continue
            entry: dict[str, Any] = {"case": case, "path": LABELS[name], "polygons": len(samples[case])}
            if outcome.get("status") != "ok" or reference is None:
                entry.update(result="not run", compared_values=0)
            else:
                # an extrapolated rasterio + numpy run is compared on the dates it measured
                entry.update(compare(outcome.get("values", {}), reference, complete=not outcome.get("extrapolated")))
            out.append(entry)
    return out


def failures(checks: list[dict[str, Any]], results: Results) -> tuple[list[str], list[str]]:
    """The ``case / path`` that differ from rasterstats, and the polyfis contenders that did not run."""
    failed = [f"{c['case']} / {c['path']}" for c in checks if c.get("result") == "FAIL"]
    broken = [f"{case} / {LABELS[name]}" for case, by_name in results.items() for name, res in by_name.items()
              if name.startswith("polyfis") and res.get("status") != "ok"]
    return failed, broken


def case_rows(case: str, results: dict[str, dict[str, Any]], job_size: dict[str, Any],
              penalty_s_per_gib: float) -> list[dict[str, Any]]:
    """Table rows of one case: one per contender (polyfis engine and HTTP as cold and warm rows)."""
    floor = results.get("io_floor", {}).get("wall_s")
    rs = results.get("rasterstats", {}).get("wall_s")
    ee = results.get("exactextract", {}).get("wall_s")
    rows = []
    for name in contenders(case):
        res = results.get(name)
        if res is None:
            continue
        variants = [("", "wall_s")]
        if name in ("polyfis_engine", "polyfis_http"):
            variants = [("cold", "cold_s"), ("warm", "warm_s")]
        for variant, key in variants:
            label = LABELS[name] + (f" ({variant})" if variant else "")
            row: dict[str, Any] = {"contender": name, "variant": variant or None, "label": label,
                                   "status": res.get("status"), "peak_rss_bytes": res.get("peak_rss_bytes"),
                                   "extrapolated": bool(res.get("extrapolated")),
                                   "note": "; ".join(filter(None, [res.get("note") or res.get("message"),
                                                                   _run_note(res, key, penalty_s_per_gib)]))}
            seconds = res.get(key) if res.get("status") == "ok" else None
            row["wall_s"] = seconds
            if seconds:
                row["polygon_dates_per_s"] = job_size["polygon_dates"] / seconds
                row["mpx_per_s"] = job_size["zonal_mpx"] / seconds
                row["x_io_floor"] = seconds / floor if floor else None
                if name.startswith("polyfis"):
                    row["rasterstats_over_polyfis"] = rs / seconds if rs else None
                    row["exactextract_over_polyfis"] = ee / seconds if ee else None
            rows.append(row)
    return rows


def _run_note(res: dict[str, Any], key: str, penalty_s_per_gib: float) -> str:
    """The spread of repeated runs and any sign of a busy machine or of disk reads."""
    runs = res.get("runs") or [res]
    notes = []
    times = [r[key] for r in runs if r.get(key) is not None]
    if len(times) > 1:
        notes.append(f"median of {len(times)} runs ({min(times):.2f}–{max(times):.2f} s)")
    busy = max((r.get("background_cpu_s") or 0) / max(r.get("process_s") or 1.0, 1e-9) for r in runs)
    if busy > 0.1:
        notes.append(f"other processes used up to {busy:.1f} CPU-s per wall second meanwhile")
    read = max(r.get("disk_read_bytes") or 0 for r in runs)
    if read > 10 << 20:
        notes.append(f"read {read / 2**20:.0f} MiB from disk, the page cache having dropped it since the "
                     f"warm-up (≈ +{read / 2**30 * penalty_s_per_gib:.1f} s)")
    return "; ".join(notes)


def polyfis_details(results: Results) -> list[dict[str, Any]]:
    """Per single case, polyfis engine and HTTP: cold, warm, speed-up, start-up and the model's share."""
    details = []
    for case, by_name in results.items():
        for name, path in (("polyfis_engine", "engine"), ("polyfis_http", "HTTP")):
            timing = by_name.get(name)
            if not timing or timing.get("status") != "ok":
                continue
            d: dict[str, Any] = {"case": case, "path": path, "cold_s": timing["cold_s"], "warm_s": timing["warm_s"],
                                 "speedup": timing["cold_s"] / timing["warm_s"], "warm_all_s": timing["warm_all_s"]}
            if name == "polyfis_engine":
                calls = timing["calls"]
                d.update(import_s=timing["import_s"], model_load_s=timing["model_load_s"],
                         startup_s=timing["archive_open_s"], model_cold_s=calls[0]["model_s"],
                         model_warm_s=statistics.median(c["model_s"] for c in calls[1:]),
                         model_rows=calls[0]["model_rows"], model_calls=calls[0]["model_calls"])
            else:
                d.update(startup_s=timing["server_start_s"])
            details.append(d)
    return details


def targets(all_rows: dict[str, list[dict[str, Any]]], results: Results) -> list[dict[str, Any]]:
    """The targets, each measured in this run and marked met or gap."""
    out: list[dict[str, Any]] = []

    def add(target: str, case: str, subject: str, value: float | None, limit: float, higher_is_better: bool,
            unit: str = "x") -> None:
        met = "n/a"
        if value is not None:
            met = "met" if (value >= limit if higher_is_better else value <= limit) else "gap"
        out.append({"target": target, "case": case, "subject": subject, "value": value, "limit": limit,
                    "unit": unit, "status": met})

    for case, rows in all_rows.items():
        for row in rows:
            if not row["contender"].startswith("polyfis"):
                continue
            if row["variant"] != "warm":
                add("<= 1.2 x I/O floor", case, row["label"], row.get("x_io_floor"), 1.2, False)
            if case == "batch":
                add(">= 75 x rasterstats", case, row["label"], row.get("rasterstats_over_polyfis"), 75, True)
                add(">= 3 x exactextract", case, row["label"], row.get("exactextract_over_polyfis"), 3, True)
                rss = row.get("peak_rss_bytes") if row["status"] == "ok" else None
                add("peak RSS < 1 GB", case, row["label"], None if rss is None else rss / 2**20, 1024, False, "MiB")
        for name in ("polyfis_engine", "polyfis_http"):
            res = results.get(case, {}).get(name)
            if res and res.get("status") == "ok":
                add("warm >= 5 x faster than cold", case, LABELS[name], res["cold_s"] / res["warm_s"], 5, True)
    return out
