"""LoRA adapters: what an adapter file holds, whether it fits a model, and the user's library.

An adapter is a GGUF file with ``general.type = adapter`` and ``adapter.type = lora`` whose
tensors come in pairs named ``<base tensor>.lora_a`` and ``<base tensor>.lora_b``. In ggml's
dimension order (the order :func:`read_gguf` reports) a base weight of ``(n_in, n_out)`` takes
``lora_a`` of ``(n_in, rank)`` and ``lora_b`` of ``(rank, n_out)``; llama.cpp adds
``scale * alpha / rank * B(A x)`` to that weight's product, and refuses a pair whose shapes do
not fit. Checking the same things here first turns a refusal deep in native code into a
sentence the user can act on.

The library is the adapters folder: every ``.gguf`` file in it, plus ``library.json`` with the
names the user gave them and where they came from. PEFT adapters are converted to GGUF on the
way in (:mod:`desktop.core.peft`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop.core.gguf_info import GGUF_MAGIC, GGUFError, GGUFInfo, read_gguf
from desktop.core.paths import get_paths

if TYPE_CHECKING:
    import numpy as np

    from desktop.core.downloads import DownloadOptions

INDEX_FILE = "library.json"
SCHEMA_VERSION = 1
MAX_NAME_LENGTH = 64
_BAD_NAME = re.compile(r"[/\\\x00-\x1f]")


class AdapterError(ValueError):
    """An adapter file or folder cannot be used; the message says why and what to do."""


class AdapterMismatch(AdapterError):
    """A usable adapter that was made for a different model than the one it meets."""


class UnknownAdapter(AdapterError, LookupError):
    """No adapter in the library has that name."""


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter file says about itself."""

    path: Path
    size_bytes: int
    architecture: str
    alpha: float | None
    # base tensor name -> (lora_a shape, lora_b shape), both in ggml order
    pairs: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(repr=False)
    title: str | None = None  # general.name
    base_model: str | None = None  # general.base_model.0.name or its repo URL

    @property
    def rank(self) -> int:
        """The largest rank among the adapter's tensors (they usually all share one)."""
        return max((_rank_of(self.pairs[name]) for name in self.pairs), default=0)

    @property
    def targets(self) -> list[str]:
        """The base tensors the adapter changes, e.g. ``blk.0.attn_q.weight``."""
        return sorted(self.pairs)

    def target_summary(self) -> str:
        """Short words for the targets: ``attn_q, attn_v in 30 layers``."""
        kinds: Counter[str] = Counter()
        layers: set[str] = set()
        others: list[str] = []
        for name in self.pairs:
            parts = name.split(".")
            if len(parts) >= 3 and parts[0] == "blk":
                layers.add(parts[1])
                kinds[parts[2]] += 1
            else:
                others.append(name.removesuffix(".weight"))
        words = []
        if kinds:
            count = len(layers)
            words.append(f"{', '.join(sorted(kinds))} in {count} layer{'s' * (count != 1)}")
        words.extend(sorted(others))
        return "; ".join(words)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "size_bytes": self.size_bytes,
                "architecture": self.architecture, "rank": self.rank, "alpha": self.alpha,
                "targets": self.target_summary(), "tensor_count": len(self.pairs),
                "title": self.title, "base_model": self.base_model}


def _rank_of(pair: tuple[tuple[int, ...], tuple[int, ...]]) -> int:
    shape_a = pair[0]
    return int(shape_a[1]) if len(shape_a) > 1 else 0


def _check_readable(path: Path) -> None:
    """Adapter-worded versions of the first checks :func:`read_gguf` makes."""
    if not path.exists():
        raise AdapterError(f"The adapter file {path} does not exist.")
    if not path.is_file():
        raise AdapterError(f"{path} is not a file.")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise AdapterError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if magic != GGUF_MAGIC:
        raise AdapterError(f"{path.name} is not a GGUF LoRA adapter (it does not start with "
                           "'GGUF'). PEFT adapters are added as their folder or their "
                           "adapter_config.json.")


def inspect_adapter(path: str | os.PathLike[str]) -> AdapterInfo:
    """Read and check a GGUF LoRA adapter; raise :class:`AdapterError` when it is unusable."""
    path = Path(path)
    _check_readable(path)
    try:
        info = read_gguf(path)
    except GGUFError as exc:
        raise AdapterError(str(exc)) from exc
    meta = info.metadata
    if info.file_type != "adapter":
        raise AdapterError(f"{path.name} is a {info.file_type}, not a LoRA adapter (its "
                           "general.type is not 'adapter'). Load it as a model instead.")
    kind = meta.get("adapter.type")
    if kind != "lora":
        raise AdapterError(f"{path.name} is a '{kind}' adapter; NoMoat applies LoRA adapters "
                           "only (adapter.type = lora).")
    halves: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in info.tensor_shapes.items():
        if name.endswith((".lora_a", ".lora_b")):
            base, _, half = name.rpartition(".")
            halves.setdefault(base, {})[half] = shape
        elif name.endswith("_norm.weight"):
            continue  # llama.cpp skips norm vectors that some exporters add
        else:
            raise AdapterError(f"{path.name} has a tensor '{name}' that is neither a lora_a "
                               "nor a lora_b half, so it is not a LoRA adapter llama.cpp can "
                               "apply.")
    bad_type = _unusable_tensor_type(path)
    if bad_type is not None:
        raise AdapterError(f"{path.name} stores tensor '{bad_type[0]}' as {bad_type[1]}, which "
                           "llama.cpp cannot apply as a LoRA (use F32, F16, BF16 or a "
                           "quantized type). Convert the adapter again.")
    pairs: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for base, parts in sorted(halves.items()):
        if set(parts) != {"lora_a", "lora_b"}:
            missing = ({"lora_a", "lora_b"} - set(parts)).pop()
            raise AdapterError(f"{path.name} is damaged: tensor '{base}' has no {missing} "
                               "half.")
        pairs[base] = (parts["lora_a"], parts["lora_b"])
    if not pairs:
        raise AdapterError(f"{path.name} holds no LoRA tensors.")
    alpha = meta.get("adapter.lora.alpha")
    base_model = meta.get("general.base_model.0.name") or meta.get(
        "general.base_model.0.repo_url")
    title = meta.get("general.name")
    return AdapterInfo(
        path=path, size_bytes=info.size_bytes, architecture=info.architecture,
        alpha=float(alpha) if isinstance(alpha, (int, float)) and alpha else None,
        pairs=pairs, title=title if isinstance(title, str) else None,
        base_model=base_model if isinstance(base_model, str) else None)


def _unusable_tensor_type(path: Path) -> tuple[str, str] | None:
    """The first tensor whose type llama.cpp's matrix product cannot take, if any.

    Such a file loads, but multiplying by its tensors crashes native code, so it must be
    refused here.
    """
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFReader

    unusable = {T.F64, T.I8, T.I16, T.I32, T.I64}
    for tensor in GGUFReader(path, "r").tensors:
        if tensor.tensor_type in unusable:
            return tensor.name, tensor.tensor_type.name
    return None


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)


def check_compatible(adapter: AdapterInfo, model: GGUFInfo) -> None:
    """Raise :class:`AdapterMismatch` unless *adapter* fits *model* the way llama.cpp needs.

    The same rules as llama.cpp's loader: the architecture matches, every base tensor exists,
    ``lora_a`` takes the base tensor's input width, ``lora_b`` gives its output width, and the
    two halves share a rank (token embeddings have their halves the other way round).
    """
    label = adapter.path.name
    model_label = model.name or model.path.name
    if adapter.architecture != model.architecture:
        raise AdapterMismatch(
            f"{label} was made for '{adapter.architecture}' models, but the loaded model "
            f"{model_label} is a '{model.architecture}' model. Choose an adapter made for this "
            "model, or load the model it was made for.")
    missing = [name for name in adapter.pairs if name not in model.tensor_shapes]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise AdapterMismatch(
            f"{label} changes tensor '{missing[0]}'{more}, which {model_label} does not have: "
            "it was made for a different model. Choose an adapter made for this model.")
    for name, (shape_a, shape_b) in adapter.pairs.items():
        base = model.tensor_shapes[name]
        if len(base) != 2 or len(shape_a) != 2 or len(shape_b) != 2:
            raise AdapterMismatch(f"{label}: tensor '{name}' is not a matrix, so a LoRA "
                                  "adapter cannot change it.")
        if name.endswith("token_embd.weight"):
            fits = base[0] == shape_b[1] and base[1] == shape_a[1]
            expected = f"{_dims((shape_a[1], shape_b[1]))}"
        else:
            fits = base[0] == shape_a[0] and base[1] == shape_b[1] and shape_a[1] == shape_b[0]
            expected = f"{_dims((shape_a[0], shape_b[1]))}"
        if not fits:
            raise AdapterMismatch(
                f"{label} expects tensor '{name}' to be {expected}, but in {model_label} it is "
                f"{_dims(base)}: the adapter was made for a different model of the same "
                "family. Choose an adapter made for this model.")


# -- writing ---------------------------------------------------------------------------------------
def write_lora_gguf(path: str | os.PathLike[str], architecture: str,
                    pairs: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float, *,
                    title: str | None = None, base_model: str | None = None,
                    base_model_url: str | None = None) -> Path:
    """Write a GGUF LoRA adapter.

    *pairs* maps each base tensor name (``blk.0.attn_q.weight``) to ``(A, B)`` in PEFT's numpy
    layout: ``A`` is ``(rank, n_in)`` and ``B`` is ``(n_out, rank)``, which are exactly
    ``(n_in, rank)`` and ``(rank, n_out)`` in ggml's order. Tensors are stored as float32.
    """
    import gguf
    import numpy as np

    path = Path(path)
    writer = gguf.GGUFWriter(str(path), architecture)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        if title:
            writer.add_name(title)
        if base_model or base_model_url:
            writer.add_base_model_count(1)
            if base_model:
                writer.add_base_model_name(0, base_model)
            if base_model_url:
                writer.add_base_model_repo_url(0, base_model_url)
        for name, (lora_a, lora_b) in pairs.items():
            writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(lora_a, dtype=np.float32))
            writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(lora_b, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path


# -- the library -----------------------------------------------------------------------------------
def check_name(name: str) -> str:
    """Return *name* stripped, or raise :class:`AdapterError` if it cannot name an adapter."""
    clean = name.strip()
    if not clean:
        raise AdapterError("An adapter needs a name.")
    if len(clean) > MAX_NAME_LENGTH:
        raise AdapterError(f"'{clean[:20]}…' is too long for a name: use at most "
                           f"{MAX_NAME_LENGTH} characters.")
    if _BAD_NAME.search(clean):
        raise AdapterError(f"'{clean}' cannot name an adapter: leave out slashes and control "
                           "characters.")
    return clean


def _default_name(source: Path) -> str:
    if source.name in ("adapter_config.json", "adapter_model.safetensors"):
        return source.parent.name
    if source.is_dir():
        return source.name
    return source.name[:-5] if source.name.lower().endswith(".gguf") else source.stem


@dataclass(frozen=True)
class LibraryAdapter:
    """One adapter in the library. ``info`` is None when the file cannot be read now."""

    name: str
    path: Path
    info: AdapterInfo | None
    problem: str | None = None
    source: str | None = None
    base_model: str | None = None
    added_at: float = 0.0
    #: How NoMoat trained it (data set, size, steps, final loss, ...); None for others.
    training: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "source": self.source,
                "base_model": self.base_model or (self.info.base_model if self.info else None),
                "added_at": self.added_at, "problem": self.problem,
                "info": None if self.info is None else self.info.to_dict(),
                "training": self.training}


class AdapterLibrary:
    """The adapters folder: GGUF LoRA files and the names the user gave them."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else get_paths().adapters

    # -- the index -------------------------------------------------------------------------------
    def _read_index(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.folder / INDEX_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise AdapterError(f"The adapter library index {self.folder / INDEX_FILE} cannot be "
                               f"read ({exc}). Move it away to start a new one.") from exc
        entries = data.get("adapters") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            return {}
        return {str(k): v for k, v in entries.items() if isinstance(v, dict)}

    def _write_index(self, entries: dict[str, dict[str, Any]]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"schema_version": SCHEMA_VERSION, "adapters": entries}, indent=2,
                          ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(prefix=".library-", suffix=".json", dir=self.folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, self.folder / INDEX_FILE)

    # -- reading ---------------------------------------------------------------------------------
    def adapters(self) -> list[LibraryAdapter]:
        """Every adapter in the folder, by name; unreadable files are listed with a problem."""
        if not self.folder.is_dir():
            return []
        index = self._read_index()
        found = []
        for file in sorted(self.folder.glob("*.gguf")):
            if file.name.startswith(".") or not file.is_file():
                continue
            record = index.get(file.name, {})
            try:
                info: AdapterInfo | None = inspect_adapter(file)
                problem = None
            except AdapterError as exc:
                info, problem = None, str(exc)
            found.append(LibraryAdapter(
                name=str(record.get("name") or _default_name(file)), path=file, info=info,
                problem=problem, source=record.get("source"),
                base_model=record.get("base_model"),
                added_at=float(record.get("added_at") or file.stat().st_mtime),
                training=record["training"] if isinstance(record.get("training"), dict)
                else None))
        return sorted(found, key=lambda a: a.name.lower())

    def find(self, name: str) -> LibraryAdapter | None:
        """The adapter called *name* (names compare exactly), or None."""
        for adapter in self.adapters():
            if adapter.name == name:
                return adapter
        return None

    def get(self, name: str) -> LibraryAdapter:
        """The adapter called *name*; raise :class:`UnknownAdapter` if there is none."""
        found = self.find(name)
        if found is None:
            known = ", ".join(a.name for a in self.adapters()) or "none"
            raise UnknownAdapter(f"There is no adapter called '{name}' in the library. "
                                 f"Adapters: {known}.")
        return found

    # -- changing ----------------------------------------------------------------------------------
    def _free_name(self, name: str) -> str:
        name = check_name(name)
        if self.find(name) is not None:
            raise AdapterError(f"An adapter called '{name}' is already in the library. Give "
                               "this one another name, or rename the other first.")
        return name

    def _free_file(self, stem: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "adapter"
        candidate = self.folder / f"{stem}.gguf"
        number = 2
        while candidate.exists():
            candidate = self.folder / f"{stem}-{number}.gguf"
            number += 1
        return candidate

    def add_file(self, source: str | os.PathLike[str], *, name: str | None = None,
                 base_model: GGUFInfo | str | os.PathLike[str] | None = None,
                 origin: str | None = None,
                 training: dict[str, Any] | None = None) -> LibraryAdapter:
        """Add a GGUF LoRA file or a PEFT adapter (its folder or a file in it).

        PEFT adapters are converted to GGUF for *base_model* (a GGUF model path or its
        :class:`GGUFInfo`), which they need for tensor names and shapes; a GGUF adapter is
        checked against it when given. The file is copied into the library, so the source may
        go away afterwards. *training* is what NoMoat's trainer says about an adapter it made
        (JSON-serializable), kept with the entry.
        """
        from desktop.core import peft

        source = Path(source).expanduser()
        name = self._free_name(name if name is not None else _default_name(source))
        base = _base_info(base_model)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self._free_file(name)
        partial = target.with_name(f".{target.name}.part")
        try:
            if peft.is_peft_source(source):
                if base is None:
                    raise AdapterError(f"{source.name} is a PEFT adapter: choose the model it "
                                       "is for, so it can be converted to GGUF for that model.")
                peft.convert_peft(source, base, partial, title=name)
                converted = "peft"
            else:
                info = inspect_adapter(source)
                if base is not None:
                    check_compatible(info, base)
                shutil.copyfile(source, partial)
                converted = None
            inspect_adapter(partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        index = self._read_index()
        record: dict[str, Any] = {"name": name, "source": origin or str(source),
                                  "added_at": time.time()}
        if base is not None:
            record["base_model"] = base.name or base.path.name
        if converted:
            record["converted_from"] = converted
        if training:
            record["training"] = dict(training)
        index[target.name] = record
        self._write_index(index)
        return self.get(name)

    def add_from_hub(self, ref: str, *, name: str | None = None,
                     base_model: GGUFInfo | str | os.PathLike[str] | None = None,
                     options: DownloadOptions | None = None) -> LibraryAdapter:
        """Download ``REPO_ID/FILENAME`` (or a hub file address) and add it.

        A GGUF file is downloaded alone; for a PEFT adapter name either of its two files and
        both are fetched. Downloads go through :func:`desktop.core.downloads.download`, so they
        are checked against the hub's size and checksum like models; nothing is kept when a
        check fails.
        """
        from desktop.core.downloads import DownloadError, DownloadRequest, RemoteFile, download

        try:
            parsed = DownloadRequest.parse(ref)
        except ValueError as exc:
            raise AdapterError(f"'{ref}' does not name a file in a hub repo: write it as "
                               "OWNER/REPO/FILE.gguf, or OWNER/REPO/adapter_config.json for a "
                               "PEFT adapter.") from exc
        filename = parsed.files[0].filename
        folder, _, leaf = filename.rpartition("/")
        wanted: tuple[str, ...]
        if leaf in ("adapter_config.json", "adapter_model.safetensors"):
            prefix = f"{folder}/" if folder else ""
            wanted = (f"{prefix}adapter_config.json", f"{prefix}adapter_model.safetensors")
        elif leaf.lower().endswith(".gguf"):
            wanted = (filename,)
        else:
            raise AdapterError(f"'{leaf}' is neither a GGUF adapter (.gguf) nor a PEFT adapter "
                               "(adapter_config.json or adapter_model.safetensors).")
        request = DownloadRequest(parsed.repo_id, tuple(RemoteFile(f) for f in wanted),
                                  parsed.revision)
        with tempfile.TemporaryDirectory(prefix="nomoat-adapter-") as scratch:
            try:
                download(request, Path(scratch), options=options)
            except DownloadError as exc:
                raise AdapterError(str(exc)) from exc
            paths = request.paths(Path(scratch))
            peft_files = len(paths) > 1
            source = paths[0].parent if peft_files else paths[0]
            default = parsed.repo_id.split("/")[-1] if peft_files else _default_name(paths[0])
            return self.add_file(source, name=name if name is not None else default,
                                 base_model=base_model,
                                 origin=f"hf://{parsed.repo_id}/{filename}")

    def rename(self, name: str, new_name: str) -> LibraryAdapter:
        """Give an adapter a new name; its file keeps its own."""
        adapter = self.get(name)
        new_name = check_name(new_name)
        if new_name != name:
            new_name = self._free_name(new_name)
        index = self._read_index()
        record = index.get(adapter.path.name, {})
        record["name"] = new_name
        index[adapter.path.name] = record
        self._write_index(index)
        return self.get(new_name)

    def remove(self, name: str) -> None:
        """Delete an adapter's file and its entry."""
        adapter = self.get(name)
        adapter.path.unlink(missing_ok=True)
        index = self._read_index()
        if index.pop(adapter.path.name, None) is not None:
            self._write_index(index)


def _base_info(base: GGUFInfo | str | os.PathLike[str] | None) -> GGUFInfo | None:
    if base is None or isinstance(base, GGUFInfo):
        return base
    try:
        return read_gguf(base)
    except GGUFError as exc:
        raise AdapterError(f"The base model cannot be read: {exc}") from exc


def describe_stack(entries: Iterable[tuple[str, float]]) -> str:
    """``pirate 0.8 + sql 0.5``: how the chat header names active adapters."""
    return " + ".join(f"{name} {scale:g}" for name, scale in entries)
