"""Local images: inspect and build."""

from __future__ import annotations

from collections.abc import Mapping

from hostops.docker.client import Callback, _client, _errors
from hostops.errors import HostOpsError, ImageMissing, NotFound
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


def image_build(
    path: str,
    tag: str,
    *,
    docker_url: str,
    dockerfile: str = "Dockerfile",
    buildargs: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    on_progress: Callback | None = None,
    timeout: float = 3600,
) -> ImageInfo:
    """Build the context directory ``path`` into ``tag``, passing each output line to
    ``on_progress``. Uses the engine's classic build API (the SDK has no BuildKit session, so
    no ``RUN --mount`` secrets: images that need them are built with ``docker buildx``)."""
    emit = on_progress or (lambda _line: None)
    client = _client(docker_url, timeout)
    with _errors(f"building {tag}"):
        stream = client.api.build(
            path=path, tag=tag, dockerfile=dockerfile, buildargs=dict(buildargs or {}),
            labels=dict(labels or {}), rm=True, forcerm=True, decode=True,
        )  # fmt: skip
        for chunk in stream:
            if "error" in chunk:
                raise HostOpsError(f"building {tag} failed: {chunk['error'].strip()}")
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    emit(line.rstrip())
    return image_inspect(tag, docker_url=docker_url)
