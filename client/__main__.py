"""``python -m jhub_gateway.client``: list clusters, stop one, show options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from . import Gateway
from .errors import GatewayAuthError, GatewayClusterError, GatewayServerError, GatewayValueError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jhub_gateway.client", description=__doc__)
    p.add_argument("--address", help="gateway URL (default: gateway.address config)")
    p.add_argument("--auth", help="basic, jupyterhub, kerberos or a class path")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list your clusters")
    ls.add_argument(
        "--status",
        help="comma-separated statuses (default: pending,running)",
    )
    stop = sub.add_parser("stop", help="stop a cluster")
    stop.add_argument("name")
    sub.add_parser("options", help="show the cluster options you may set")
    return p


def _run(args: argparse.Namespace, out: TextIO) -> None:
    with Gateway(address=args.address, auth=args.auth) as gw:
        if args.command == "list":
            status = args.status.split(",") if args.status else None
            reports = gw.list_clusters(status=status)
            print(f"{'NAME':<34} {'STATUS':<9} {'STARTED':<19} DETAIL", file=out)
            for r in sorted(reports, key=lambda r: r.start_time or 0):
                started = r.start_time.strftime("%Y-%m-%d %H:%M:%S") if r.start_time else "-"
                detail = ": ".join(p for p in (r.reason, r.message) if p)
                print(f"{r.name:<34} {r.status.name:<9} {started:<19} {detail}", file=out)
        elif args.command == "stop":
            gw.stop_cluster(args.name)
            print(f"Stopping {args.name}", file=out)
        else:
            opts = gw.cluster_options()
            for key, field in opts._fields.items():
                print(f"{key} = {field.value!r}  ({field.describe()})", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _run(args, sys.stdout)
    except (
        GatewayAuthError,
        GatewayValueError,
        GatewayClusterError,
        GatewayServerError,
        ValueError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
