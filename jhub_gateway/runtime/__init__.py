"""The cluster runtime that runs inside each Dask scheduler.

Loaded with ``dask scheduler --preload jhub_gateway.runtime.preload``; it
serves the small scheduler-side HTTP API the gateway calls (scale, adapt),
reports heartbeats to the gateway and asks it to stop the cluster when idle.
"""
