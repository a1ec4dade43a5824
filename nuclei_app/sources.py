"""Model sources: the bundled folder, a local folder, or ``hf://OWNER/NAME[@REVISION]``.

``resolve_model`` never leaves the user without a model unless asked to: when the chosen
source fails it falls back to the bundled folder and says plainly what was asked for, why it
failed and what is used instead.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .config import BUNDLED_MODEL_DIR, MODEL_ENV_VAR
from .model import MODEL_CARD, REQUIRED_FILES, ModelLoadError, NucleiModel, load_model_folder

HF_PREFIX = "hf://"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    revision: str | None  # branch, tag or commit; None means the default branch

    def __str__(self) -> str:
        return f"{HF_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def default_source() -> str:
    return os.environ.get(MODEL_ENV_VAR) or str(BUNDLED_MODEL_DIR)


def parse_hub_source(source: str) -> HubSource:
    spec = source[len(HF_PREFIX):]
    repo_id, at, revision = spec.partition("@")
    revision = revision.strip()
    # "@" with nothing after it is a revision left out by mistake, not the default branch.
    if not REPO_RE.match(repo_id) or (at and not revision):
        raise ModelLoadError(f"{source}: expected hf://OWNER/NAME or hf://OWNER/NAME@REVISION.")
    return HubSource(repo_id, revision or None)


def download_from_hub(hub: HubSource) -> tuple[Path, str]:
    """Downloads (or finds in the cache) the model folder; returns (folder, commit hash)."""
    from huggingface_hub import snapshot_download

    patterns = list(REQUIRED_FILES) + [MODEL_CARD]
    folder = None
    if hub.revision and COMMIT_RE.match(hub.revision):
        # A commit never changes: a cached copy is the model, no network needed.
        folder = _cached_snapshot(hub, patterns)
    if folder is None:
        try:
            folder = snapshot_download(hub.repo_id, revision=hub.revision, allow_patterns=patterns,
                                       library_name="nuclei-app")
        except Exception as error:  # noqa: BLE001 - every Hub failure becomes one clear message
            raise ModelLoadError(f"{hub}: {describe_hub_error(error)}") from None
    folder = Path(folder)
    return folder, folder.name  # snapshot folders are named by their commit hash


def _cached_snapshot(hub: HubSource, patterns: list[str]) -> str | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(hub.repo_id, revision=hub.revision, allow_patterns=patterns,
                                 local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None


def root_cause(error: BaseException) -> BaseException:
    """huggingface_hub wraps an HTTP error in a "not in the cache" error when it falls back
    to the cache; the HTTP error is what the user needs to hear about."""
    from huggingface_hub import errors

    seen = error
    while seen is not None:
        if isinstance(seen, errors.HfHubHTTPError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def describe_hub_error(error: BaseException) -> str:
    from huggingface_hub import errors

    error = root_cause(error)
    if isinstance(error, errors.GatedRepoError):
        return "access to this repository is gated; accept its terms on the Hub and set HF_TOKEN."
    if isinstance(error, errors.RevisionNotFoundError):
        return "that revision (branch, tag or commit) does not exist in the repository."
    if isinstance(error, errors.RepositoryNotFoundError):
        return ("repository not found, or it is private and HF_TOKEN is missing or not allowed "
                "to read it.")
    if isinstance(error, errors.OfflineModeIsEnabled) or (
            isinstance(error, errors.LocalEntryNotFoundError) and os.environ.get("HF_HUB_OFFLINE")):
        return "HF_HUB_OFFLINE is set and this revision is not in the local cache."
    if isinstance(error, errors.LocalEntryNotFoundError):
        return "the Hugging Face Hub could not be reached and this revision is not in the local cache."
    if isinstance(error, errors.HfHubHTTPError):
        status = http_status(error)
        if status == 401:
            return "the Hub refused the token (401): check HF_TOKEN."
        return f"the Hub answered with an error ({status or 'no status'}): {str(error).splitlines()[0]}"
    return f"download failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})."


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a huggingface_hub error's response, where it has one."""
    return getattr(getattr(error, "response", None), "status_code", None)


def load_source(source: str) -> NucleiModel:
    """Loads exactly ``source``; raises ModelLoadError with the reason if it can't."""
    if source.startswith(HF_PREFIX):
        hub = parse_hub_source(source)
        folder, commit = download_from_hub(hub)
        return load_model_folder(folder, source=str(hub), revision=commit)
    return load_model_folder(Path(source).expanduser(), source=source)


def resolve_model(source: str | None = None, fallback: bool = True) -> NucleiModel:
    """The model for ``source`` (default: $NUCLEI_MODEL, else the bundled folder).

    With ``fallback`` a failing *remote* source (the Hub down, a revision gone) is replaced
    by the bundled model, and the returned model's ``notice`` explains what happened. A local
    folder that fails is an error: a mistyped path must not silently run another model.
    """
    from_environment = not source and bool(os.environ.get(MODEL_ENV_VAR))
    source = source or default_source()
    try:
        if source.startswith(HF_PREFIX):
            parse_hub_source(source)  # a malformed address is a typo: an error, never a fallback
    except ModelLoadError as error:
        raise _from_environment(error) if from_environment else error from None
    try:
        return load_source(source)
    except ModelLoadError as error:
        bundled = str(BUNDLED_MODEL_DIR)
        if not fallback or not source.startswith(HF_PREFIX):
            raise (_from_environment(error) if from_environment else error) from None
        try:
            model = load_model_folder(BUNDLED_MODEL_DIR, source=bundled)
        except ModelLoadError as bundled_error:
            raise ModelLoadError(f"{error}; the bundled model could not be loaded either: {bundled_error}") from None
        reason = str(error).removeprefix(f"{source}: ").rstrip(".")  # the source is named once
        model.notice = (f"Model source {source} could not be used: {reason}. "
                        f"Using the bundled model ({bundled}) instead.")
        model.fallback_from = source
        return model


def _from_environment(error: ModelLoadError) -> ModelLoadError:
    return ModelLoadError(f"{str(error).rstrip('.')} (the model source comes from the {MODEL_ENV_VAR} environment "
                          "variable).")


def describe(model: NucleiModel) -> str:
    """One line: which model is in use."""
    where = "bundled" if model.folder.resolve() == BUNDLED_MODEL_DIR.resolve() else (
        "Hugging Face Hub" if model.source.startswith(HF_PREFIX) else "local folder")
    revision = f", commit {model.revision}" if model.revision else ""
    return f"{model.source} ({where}{revision})"
