"""``polyfis`` command line: serve | demo | query | batch | clouds | ingest | index. Each command is a thin wrapper
over the engine (:mod:`stats`) or the service (:mod:`service`); settings are read and validated once, at start-up."""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from stats.errors import StatsError
from stats.results import TABLES
from stats.settings import Settings, configure, current

from .options import query_options, request_options

_ARCHIVE_HELP = ("Archive folder, collection.json, static catalog URL, items.parquet index, or a STAC API as "
                 "stac+https://host/path#collection (default: the embedded demo archive, built on first use).")


def _settings(**overrides: Any) -> Settings:
    """The ``POLYFIS_*`` settings, validated (a bad value stops the command with its message), made the
    process's settings."""
    try:
        settings = Settings.from_env(**overrides)
    except StatsError as exc:
        raise click.ClickException(str(exc)) from exc
    configure(settings)
    return settings


def _check_port(host: str, port: int) -> None:
    """Stop before anything else when the port cannot be served on, saying how to choose another."""
    from service.server import port_in_use

    problem = port_in_use(host, port)
    if problem:
        raise click.ClickException(f"cannot serve on {host}:{port} ({problem}); another server may be running "
                                   f"there: stop it, or choose another port with --port {port + 1}")


def _build_progress(done: int, total: int) -> None:
    """The demo archive's build, one line that fills in on stderr."""
    click.echo(f"\rbuilding the demo archive (first use): {done}/{total} acquisitions", err=True,
               nl=done == total)


def _open_archive(archive: str | None) -> Any:
    from stats.archive.catalog import Archive
    from stats.archive.synthetic import demo_archive_of

    return Archive.open(archive or demo_archive_of(current(), progress=_build_progress))


def _read_geometry(value: str) -> Any:
    """A file path (GeoJSON or WKT text), inline GeoJSON or inline WKT."""
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:  # an inline WKT can be too long to be a file name
        is_file = False
    text = path.read_text(encoding="utf-8") if is_file else value
    stripped = text.strip()
    if not is_file and not stripped.startswith("{") and "(" not in stripped:
        raise click.BadParameter(f"no file {value!r:.200} (and it is not WKT or GeoJSON text); expected the path of "
                                 "a GeoJSON or WKT file, or the geometry itself", param_hint="--geometry")
    if stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"invalid GeoJSON: {exc.msg} at line {exc.lineno}",
                                     param_hint="--geometry") from exc
    return stripped


@click.group()
@click.version_option(package_name="polyfis")
def main() -> None:
    """polyfis: per-date Sentinel-2 statistics and s2cloudless cloud probability for a polygon."""
    _settings()  # every command starts with the POLYFIS_* settings checked


@main.command()
@click.option("--archive", envvar="POLYFIS_ARCHIVE", help=_ARCHIVE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="worker processes (the archive index and the model are loaded once, before they fork).")
def serve(archive: str | None, host: str, port: int, workers: int) -> None:
    """Serve the HTTP API under gunicorn (settings from POLYFIS_* variables)."""
    from service import create_app
    from service.server import serve as run_server

    _check_port(host, port)
    settings = _settings(**({"archive": archive} if archive else {}))
    app = create_app(settings)
    with app.app_context():
        from service import archive as current_archive

        try:
            arch = current_archive()  # fail early, and build the demo archive once, before forking
        except StatsError as exc:
            raise click.ClickException(str(exc)) from exc
    if not settings.archive and arch.href:
        settings = replace(settings, archive=arch.href)  # the workers open the archive just built
    size = "an unknown number of" if arch.count is None else str(arch.count)
    click.echo(f"polyfis: serving {size} acquisitions ({arch.kind}) on http://{host}:{port} "
               f"with {workers} workers", err=True)
    run_server(settings, host=host, port=port, workers=workers)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--demo-dir", envvar="POLYFIS_DEMO_DIR", help="Where to build and cache the demo archive.")
@click.option("--no-serve", is_flag=True, help="Build the archive, run one example query, print it and exit.")
def demo(host: str, port: int, demo_dir: str | None, no_serve: bool) -> None:
    """Build the demo archive (and its CLP/CLM cloud layers) if needed, print a ready curl command and serve it."""
    from stats.archive.synthetic import build_demo_archive, demo_polygons

    if not no_serve:
        _check_port(host, port)
    from stats.clouds.store import store_cloud_layers

    try:
        root = build_demo_archive(Path(demo_dir) if demo_dir else None, progress=_build_progress)
        layers = store_cloud_layers(root)  # precomputed CLP/CLM, as Sentinel Hub serves them; kept once stored
    except StatsError as exc:
        raise click.ClickException(str(exc)) from exc
    if layers.failed:
        raise click.ClickException(f"demo archive: the cloud layers of {sorted(layers.failed)} failed")
    fields = [f for f in demo_polygons()["features"] if f["properties"].get("kind") == "field"]
    feature = next((f for f in fields if f["properties"].get("name") == "field_small"), fields[0])
    body = {
        "geometry": feature["geometry"],
        "time": {"from": "2023-01-01", "to": "2023-12-31"},
        "bands": ["B04", "B08"],
        "indices": ["NDVI"],
        "statistics": ["mean", "std", "p50"],
    }
    click.echo(f"demo archive: {root}", err=True)
    if no_serve:
        from stats import Archive, TimeSeriesRequest, query_timeseries

        result = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(root))
        sys.stdout.write(result.to_csv())
        return
    url = f"http://{host}:{port}/api/v1/timeseries"
    click.echo(f"\nOpen the web page: http://{host}:{port}/ (draw a field, see its series, download the CSV)", err=True)
    click.echo("\nOr try (JSON, then CSV):\n", err=True)
    click.echo(f"curl -s -X POST {url} -H 'Content-Type: application/json' -d '{json.dumps(body)}'\n", err=True)
    click.echo(f"curl -s -X POST '{url}?format=csv' -H 'Content-Type: application/json' -d '{json.dumps(body)}'\n",
               err=True)
    from service.server import serve as run_server

    run_server(_settings(archive=str(root)), host=host, port=port, workers=2)


@main.command()
@click.option("--archive", envvar="POLYFIS_ARCHIVE", help=_ARCHIVE_HELP)
@click.option("--geometry", required=True, help="GeoJSON or WKT: a file path or the text itself.")
@click.option("--crs", default="EPSG:4326", show_default=True, help="CRS of the geometry (x/lon first).")
@click.option("--from", "start", required=True, help="First date, YYYY-MM-DD or an ISO date-time.")
@click.option("--to", "end", required=True, help="Last date (inclusive), YYYY-MM-DD or an ISO date-time.")
@query_options
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option("--table", type=click.Choice(TABLES), default="dates", show_default=True,
              help="CSV: the dates, or the intervals, curves or season of --aggregate, --fill or --season.")
@click.option("--output", type=click.File("w"), default="-", help="Output file (default stdout).")
def query(archive: str | None, geometry: str, crs: str, start: str, end: str, fmt: str, table: str, output: Any,
          **options: Any) -> None:
    """Compute a time series without a server (the options are the request fields of /api/v1/timeseries)."""
    from stats import TimeSeriesRequest, query_timeseries

    body: dict[str, Any] = {"geometry": _read_geometry(geometry), "crs": crs, "time": {"from": start, "to": end},
                            **request_options(options)}
    try:
        limits = current().limits
        result = query_timeseries(TimeSeriesRequest.from_dict(body, limits=limits), _open_archive(archive),
                                  limits=limits)
        text = result.to_csv(table) if fmt == "csv" else None
    except StatsError as exc:
        raise click.ClickException(str(exc)) from exc
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if text is not None:
        output.write(text)
    else:
        json.dump(result.to_dict(), output, indent=2, allow_nan=False)
        output.write("\n")


@main.command()
@click.argument("polygons", type=click.Path(exists=True, dir_okay=False))
@click.option("--archive", envvar="POLYFIS_ARCHIVE", help=_ARCHIVE_HELP)
@click.option("--from", "start", required=True, help="First date, YYYY-MM-DD or an ISO date-time.")
@click.option("--to", "end", required=True, help="Last date (inclusive), YYYY-MM-DD or an ISO date-time.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .csv, .parquet or .gpkg (one row per polygon and date).")
@click.option("--id-field", help="Attribute or column holding the polygon id (default: 'id' when present, "
                                 "else the row number).")
@click.option("--wkt-column", help="CSV column holding the WKT geometry (default: wkt, geometry or geom).")
@click.option("--crs", help="CRS of the polygons (default: the file's own, EPSG:4326 for CSV).")
@query_options
@click.option("--scheduler", envvar="POLYFIS_DASK_SCHEDULER",
              help="Address of a running Dask scheduler (default: a LocalCluster on this machine).")
@click.option("--workers", type=click.IntRange(0, 256),
              help="LocalCluster worker processes (default: CPUs); 0 runs in this process without Dask.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
def batch(polygons: str, archive: str | None, start: str, end: str, out: str, id_field: str | None,
          wkt_column: str | None, crs: str | None, scheduler: str | None, workers: int | None, no_progress: bool,
          **options: Any) -> None:
    """Statistics for every polygon of a file and every date, on Dask; a rerun resumes."""
    from stats.batch import run_batch

    try:
        summary = run_batch(_open_archive(archive), polygons, start, end, out, options=request_options(options),
                            scheduler=scheduler, workers=workers, progress=not no_progress, id_field=id_field,
                            wkt_field=wkt_column, crs=crs, limits=current().limits)
    except StatsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{summary.rows} rows for {summary.polygons} polygons ({summary.tasks} tasks, "
               f"{summary.skipped_tasks} already done) in {summary.seconds:.1f} s -> {summary.out}", err=True)
    if summary.repaired_polygons:
        click.echo(f"{summary.repaired_polygons} polygons were invalid and are answered as repaired by "
                   "shapely.make_valid", err=True)
    if summary.failed_polygons or summary.error_rows:
        click.echo(f"{summary.failed_polygons} polygons could not be used, {summary.empty_polygons} have no result "
                   f"and {summary.error_rows} rows carry an error; see the error column", err=True)


@main.command()
@click.option("--archive", envvar="POLYFIS_ARCHIVE", required=True,
              help="Local archive folder (or its collection.json) whose items get CLP/CLM layers.")
@click.option("--from", "start", help="First date, YYYY-MM-DD (default: the archive's first).")
@click.option("--to", "end", help="Last date, YYYY-MM-DD (default: the archive's last).")
@click.option("--force", is_flag=True, help="Compute again items whose layers are already stored.")
@click.option("--scheduler", envvar="POLYFIS_DASK_SCHEDULER",
              help="Address of a running Dask scheduler (its workers must reach the archive folder).")
@click.option("--workers", type=click.IntRange(0, 256), default=0, show_default=True,
              help="Dask LocalCluster worker processes; 0 computes here, one item after the other.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
def clouds(archive: str, start: str | None, end: str | None, force: bool, scheduler: str | None, workers: int,
           no_progress: bool) -> None:
    """Store the CLP/CLM cloud layers (160 m, s2cloudless) of every acquisition; a rerun does only new ones."""
    from stats.clouds.store import store_cloud_layers

    for name, value in (("--from", start), ("--to", end)):
        if value is not None:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise click.BadParameter(f"got {value!r}; expected a date YYYY-MM-DD", param_hint=name) from None
    try:
        summary = store_cloud_layers(archive, start=start, end=end, force=force, workers=workers,
                                     scheduler=scheduler, progress=not no_progress)
    except StatsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{summary.done} items computed ({summary.cells} cells), {summary.skipped} already stored, "
               f"{summary.busy} being computed by another run, {len(summary.failed)} failed, of {summary.items}, "
               f"in {summary.seconds:.1f} s", err=True)
    for item_id, message in sorted(summary.failed.items()):
        click.echo(f"failed: {item_id}: {message}", err=True)
    if summary.failed:
        raise SystemExit(1)


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--archive", required=True, help="Archive folder to create or append to.")
@click.option("--processing-baseline", help="Baseline (e.g. 04.00) when the files do not record it.")
def ingest(sources: tuple[str, ...], archive: str, processing_baseline: str | None) -> None:
    """Turn GeoTIFF stacks or per-band files into an archive (COG per band + STAC)."""
    from stats.archive.ingest import ingest as run_ingest

    try:
        items = run_ingest(list(sources), archive, processing_baseline=processing_baseline)
    except StatsError as exc:
        raise click.ClickException(str(exc)) from exc
    for item in items:
        click.echo(f"{item.datetime:%Y-%m-%dT%H:%M:%SZ}  {item.id}  {len(item.bands)} bands")
    click.echo(f"{len(items)} acquisitions written to {archive}", err=True)


@main.command()
@click.option("--archive", envvar="POLYFIS_ARCHIVE", required=True,
              help="Local archive folder (or its collection.json) to index.")
def index(archive: str) -> None:
    """Write (or rewrite) the stac-geoparquet index (items.parquet) of a local archive's STAC catalog."""
    from stats.archive.sources.geoparquet import index_catalog

    try:
        path = index_catalog(archive)
    except StatsError as exc:
        raise click.ClickException(str(exc)) from exc
    from stats.archive.catalog import Archive

    click.echo(f"{Archive.open(archive).count} items indexed in {path}", err=True)
