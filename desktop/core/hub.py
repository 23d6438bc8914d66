"""Explore the Hugging Face hub: find GGUF model repos and the files in them.

Searches go through ``HfApi.list_models`` (text search, the ``gguf`` tag, sorted by downloads
or likes) and file lists through ``HfApi.model_info(files_metadata=True)``, which gives every
file's size and LFS sha256 in one request. Each GGUF file becomes a :class:`GgufFile` with its
quantization read from the file name; the shards of a split GGUF (``-00001-of-00003.gguf``)
become one entry, downloadable as a whole with :meth:`GgufFile.request`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from desktop.core.downloads import DownloadRequest, RemoteFile, shard_position

Sort = Literal["downloads", "likes"]

# Longest alternatives first, each ended by a non-alphanumeric character (or the end), so
# "Q4_K_M" is not read as "Q4_K" and "IQ2_XXS" not as "IQ2_XS".
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])("
    r"IQ[1-4]_(?:XXS|XS|NL|S|M)"
    r"|TQ[12]_0"
    r"|Q[2-8]_K(?:_(?:XXL|XL|S|M|L))?"
    r"|Q[4-8]_[01](?:_[48]_[48])?"
    r"|MXFP4(?:_MOE)?"
    r"|BF16|FP16|FP32|F16|F32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


class HubError(Exception):
    """The hub could not be searched or listed; ``str(error)`` is the message for the user."""


@dataclass(frozen=True)
class HubModel:
    """A model repo found by a search."""

    repo_id: str
    downloads: int
    likes: int
    gated: bool
    tags: tuple[str, ...]
    last_modified: datetime | None

    @property
    def author(self) -> str:
        return self.repo_id.split("/")[0]


@dataclass(frozen=True)
class GgufFile:
    """One downloadable GGUF model in a repo: a single file, or all shards of a split one."""

    repo_id: str
    files: tuple[RemoteFile, ...]
    quantization: str | None
    revision: str = "main"

    @property
    def filename(self) -> str:
        """The file name, or the first shard's (the one llama.cpp opens)."""
        return self.files[0].filename

    @property
    def shards(self) -> int:
        return len(self.files)

    @property
    def size_bytes(self) -> int | None:
        sizes = [file.size_bytes for file in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    @property
    def is_projector(self) -> bool:
        """A vision projector (mmproj) that goes with a model, not a model of its own."""
        return "mmproj" in self.filename.lower()

    def request(self) -> DownloadRequest:
        """What to hand to :func:`desktop.core.downloads.download` or a DownloadManager."""
        return DownloadRequest(self.repo_id, self.files, self.revision)


def parse_quantization(filename: str) -> str | None:
    """The quantization type in a GGUF file name, upper case ('Q4_K_M', 'IQ3_XXS', 'BF16'...).

    The last match wins, because names put the quantization last
    ("Llama-3.2-1B-Instruct-Q4_K_M.gguf"). FP16/FP32 are written F16/F32, as llama.cpp does.
    """
    name = filename.rsplit("/", 1)[-1]
    shard = shard_position(name)
    stem = shard[0] if shard else re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE)
    found = _QUANT.findall(stem)
    if not found:
        return None
    quant = found[-1].upper()
    return {"FP16": "F16", "FP32": "F32"}.get(quant, quant)


def group_gguf_files(repo_id: str, files: list[RemoteFile], revision: str = "main"
                     ) -> list[GgufFile]:
    """GGUF files of a repo as downloadable entries, shards of a split model as one entry.

    A split model whose shards are not all present is left out: it could not be loaded.
    """
    singles: list[GgufFile] = []
    groups: dict[tuple[str, int], dict[int, RemoteFile]] = {}
    for file in files:
        if not file.filename.lower().endswith(".gguf"):
            continue
        shard = shard_position(file.filename)
        if shard:
            prefix, index, count = shard
            groups.setdefault((prefix, count), {})[index] = file
        else:
            singles.append(GgufFile(repo_id, (file,), parse_quantization(file.filename),
                                    revision))
    for (_prefix, count), shards in groups.items():
        if sorted(shards) != list(range(1, count + 1)):
            continue
        ordered = tuple(shards[i] for i in range(1, count + 1))
        singles.append(GgufFile(repo_id, ordered, parse_quantization(ordered[0].filename),
                                revision))
    return sorted(singles, key=lambda entry: entry.filename.lower())


def search_models(text: str, *, sort: Sort = "downloads", limit: int = 30,
                  endpoint: str | None = None, token: str | bool | None = None
                  ) -> list[HubModel]:
    """GGUF model repos whose name contains *text*, most downloaded (or liked) first.

    *endpoint* None means HF_ENDPOINT, else huggingface.co; *token* None means HF_TOKEN or the
    saved login. Raises HubError with a plain message when the hub cannot be reached.
    """
    if sort not in ("downloads", "likes"):
        raise ValueError(f"sort must be 'downloads' or 'likes', not {sort!r}")
    api = _api(endpoint, token)
    try:
        found = list(api.list_models(search=text or None, filter="gguf", sort=sort,
                                     limit=limit))
    except Exception as error:
        raise _hub_error(error, api.endpoint, f"search for '{text}'") from error
    return [HubModel(info.id, info.downloads or 0, info.likes or 0, bool(info.gated),
                     tuple(info.tags or ()), info.last_modified) for info in found]


def list_gguf_files(repo_id: str, *, revision: str | None = None, endpoint: str | None = None,
                    token: str | bool | None = None) -> list[GgufFile]:
    """Every GGUF model in *repo_id* with size, sha256 and quantization, split ones grouped."""
    api = _api(endpoint, token)
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=30)
    except Exception as error:
        raise _hub_error(error, api.endpoint, f"list the files of {repo_id}") from error
    files = [RemoteFile(s.rfilename, s.size if s.lfs is None else s.lfs.size,
                        s.lfs.sha256 if s.lfs is not None else None)
             for s in info.siblings or []]
    # Pin the commit the listing came from, so shards and sizes match what is downloaded.
    return group_gguf_files(repo_id, files, info.sha or revision or "main")


def _api(endpoint: str | None, token: str | bool | None) -> Any:
    from huggingface_hub import HfApi, constants

    # HF_ENDPOINT is read now, not when huggingface_hub was first imported.
    return HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT,
                 token=token)


def _hub_error(error: BaseException, endpoint: str, what: str) -> HubError:
    import httpx
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, RepositoryNotFoundError) and not isinstance(error, GatedRepoError):
        return HubError(f"Could not {what}: there is no such model repo on {endpoint}, or it is "
                        "private and needs a token with access.")
    if isinstance(error, RevisionNotFoundError):
        return HubError(f"Could not {what}: the repo has no such revision.")
    if isinstance(error, OfflineModeIsEnabled):
        return HubError(f"Could not {what}: hub access is switched off (HF_HUB_OFFLINE).")
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code
        return HubError(f"Could not {what}: {endpoint} answered {status}.")
    if isinstance(error, httpx.TransportError):
        return HubError(f"Could not {what}: {endpoint} cannot be reached ({error}). Check your "
                        "internet connection, proxy or the hub address setting.")
    return HubError(f"Could not {what}: {error}")
