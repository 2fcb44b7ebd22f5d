"""``python -m dashboards --root runs/``: serve the dashboard over the stores under a folder."""

from __future__ import annotations

import argparse
import sys

from xalign._cli import HelpFormatter, run_main

__all__ = ["build_parser", "main"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

EPILOG = """\
The app lists every store (a folder with manifest.json) and results table (parquet/CSV with
the results columns) under --root and reads nothing else. It never runs a model: compute
what it shows first with python -m xalign.extract / xalign.metrics / xalign.project.

examples:
  python -m dashboards --root runs/
  python -m dashboards --root runs/ --port 8051
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dashboards",
        description="Interactive dashboard: language clusters per layer, before/after, "
        "metrics, retrieval explorer, attention alignment.",
        formatter_class=HelpFormatter,
        epilog=EPILOG,
    )
    p.add_argument("--root", default="runs", help="folder holding stores and results tables")
    p.add_argument("--port", type=int, default=8050, help="port to listen on")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind; anything but localhost exposes every store under --root "
        "to the network without authentication",
    )
    p.add_argument("--debug", action="store_true", help="Dash debug mode (reloader, dev tools)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, list what the root holds, and serve until interrupted."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        from dashboards import create_app

        if args.host not in LOCAL_HOSTS:
            print(
                f"warning: --host {args.host} makes the dashboard (and every store under "
                f"{args.root}) reachable from the network, without authentication",
                file=sys.stderr,
            )
        app = create_app(args.root)
        listing = app._xalign_catalog.scan()
        print(f"root      {app._xalign_catalog.root}")
        print(
            f"stores    {len(listing.stores)}"
            + "".join(
                f"\n  {s.rel}  ({s.label}, {s.rows:,} rows, {s.projections} projections)"
                for s in listing.stores
            )
        )
        print(f"results   {len(listing.results)}" + "".join(f"\n  {r}" for r in listing.results))
        for s in listing.skipped:
            print(f"skipped   {s}")
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"\nserving   http://{host}:{args.port}/   (Ctrl-C to stop)", flush=True)
        app.run(host=args.host, port=args.port, debug=args.debug)
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
