"""Images the emulated node can "pull": each maps to local programs.

A container's process is, as with a container runtime, the image's entrypoint
unless ``command`` is given, followed by ``args`` (or the image's default
arguments when neither ``command`` nor ``args`` is given). With ``command`` set any
image runs (the command names a program on the node's ``PATH``, the venv's bin
first). Without ``command``, the image must be in :data:`IMAGES`; any other image
fails the container with ``ErrImagePull``, as a real node fails an image it cannot
pull. Names match without the tag or digest.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Image:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


IMAGES: dict[str, Image] = {
    # Our service image (api, controller): the chart always gives ``command``.
    "ghcr.io/jhub-gateway/jhub-gateway": Image(cmd=["jhub-gateway"]),
    # Our cluster image (scheduler, worker): the builders give ``command``.
    "ghcr.io/jhub-gateway/jhub-gateway-cluster": Image(cmd=["python"]),
    # dask-gateway's image (the builders' default): tini entrypoint, args are the command.
    "ghcr.io/dask/dask-gateway": Image(cmd=["python"]),
    # Traefik's image runs ``traefik`` with the container's args (the chart gives args).
    "traefik": Image(entrypoint=["traefik"]),
    "docker.io/library/traefik": Image(entrypoint=["traefik"]),
    "python": Image(cmd=["python3"]),
    "docker.io/library/python": Image(cmd=["python3"]),
}


class ImagePullError(Exception):
    """The image is unknown to the node and the container gives no command."""


def repository(image: str) -> str:
    name = image.split("@", 1)[0]
    head, sep, tail = name.rpartition(":")
    if sep and "/" not in tail:
        name = head  # strip the tag, not a registry port
    return name


def argv(container: dict) -> list[str]:
    """Entrypoint + arguments for a container spec (before ``$(VAR)`` expansion)."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if command:
        return command + args
    image = container.get("image", "")
    known = IMAGES.get(repository(image))
    if known is None:
        raise ImagePullError(
            f'image "{image}" is not available on the emulated node and the container has no '
            "command (known images: tests/kube/README.md)"
        )
    words = known.entrypoint + (args if args else known.cmd)
    if not words:
        raise ImagePullError(f'image "{image}" has no entrypoint and the container no command')
    return words
