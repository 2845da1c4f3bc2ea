"""What a notebook user runs: a cluster through the hub, scaled, computing, stopped.

Needs JUPYTERHUB_API_TOKEN (as in a notebook) and the gateway address, either as
arguments or the dask config keys gateway.address / gateway.proxy-address
(env DASK_GATEWAY__ADDRESS, DASK_GATEWAY__PROXY_ADDRESS).
"""

from __future__ import annotations

import argparse
import time

import dask.array as da

from jhub_gateway import Gateway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default=None)
    parser.add_argument("--proxy-address", default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with Gateway(args.address, proxy_address=args.proxy_address, auth="jupyterhub") as gateway:
        t0 = time.perf_counter()
        with gateway.new_cluster() as cluster:
            print(f"cluster {cluster.name} running after {time.perf_counter() - t0:.2f} s")
            cluster.scale(args.workers)
            with cluster.get_client(set_as_default=False) as client:
                client.wait_for_workers(args.workers, timeout=120)
                print(f"{args.workers} workers connected after {time.perf_counter() - t0:.2f} s")
                x = da.random.random((4000, 4000), chunks=(1000, 1000))
                total = client.compute((x + x.T).mean()).result()
                print(f"mean of x + x.T = {total:.4f} (expected about 1.0)")
                print(f"dashboard: {cluster.dashboard_link}")
        print("cluster stopped")


if __name__ == "__main__":
    main()
