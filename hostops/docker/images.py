"""Local images. They are built outside the portal (``docker buildx build``, see
workspaces/image/README.md), which only checks that the one a workspace names is there."""

from __future__ import annotations

from hostops.docker.client import _client, _errors
from hostops.errors import ImageMissing, NotFound
from hostops.types import ImageInfo


def image_inspect(tag: str, *, docker_url: str) -> ImageInfo:
    """The local image called ``tag``. Raises ImageMissing."""
    try:
        with _errors(f"inspecting image {tag}"):
            attrs = _client(docker_url).api.inspect_image(tag)
    except NotFound as exc:  # older engines word a missing image so the SDK says NotFound
        raise ImageMissing(str(exc)) from exc
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return ImageInfo(attrs["Id"], tuple(attrs.get("RepoTags") or ()), labels, int(attrs["Size"]), attrs["Created"])
