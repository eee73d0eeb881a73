"""Build sources from `[[sources]]` config entries or from a path/URL on the command line.

A location given on the command line that no `[[sources]]` entry declares is unofficial:
nothing says it is the library's vetted docs or code. Links come from the profile's
templates (petsc.org pages, GitLab blobs) only for official sources; an unofficial
docs source links only where its own `base_url` says, so an arbitrary folder never gets
invented petsc.org links.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from sciknow.config import Config, ConfigError, Profile, SourceConfig
from sciknow.ingest.base import Source

DOC_SUFFIXES = {".md", ".rst", ".html", ".htm", ".txt"}
MAIL_SUFFIXES = {".mbox", ".mbx"}
SOURCE_TREE_SUFFIXES = {".h", ".hpp", ".hh", ".c", ".cxx", ".cpp", ".cu", ".F90", ".f90", ".h90"}
TREE_SNIFF_FILES = 200  # files looked at under include/ before deciding it holds no headers


def infer_kind(location: str) -> str:
    """Guess the source kind of a command-line argument (docs/cli.md, "Verbs": `sciknow ingest`)."""
    if location.endswith(".git") or location.startswith(("git@", "file://")):
        return "git"
    if location.startswith(("http://", "https://")):
        if "/pipermail/" in location:
            return "pipermail"
        if "gitlab" in location and "/-/" not in location:
            return "gitlab"
        return "git" if any(h in location for h in ("github.com", "gitlab.com")) else "docs"
    path = Path(location).expanduser()
    if not path.exists():
        raise ConfigError(f"{location!r} is neither an existing path nor a URL")
    if path.is_dir():
        if (path / ".git").exists():
            return "git"
        return "source" if is_source_tree(path) else "docs"
    if path.suffix in MAIL_SUFFIXES or path.name.endswith((".mbox.gz", ".txt.gz")):
        return "mbox"
    if path.suffix == ".json":
        return _json_kind(path)
    raise ConfigError(f"cannot tell what kind of source {location!r} is; add it to sciknow.toml")


def is_source_tree(path: Path) -> bool:
    """A library's source tree without git (release tarball, installed copy): C, C++ or
    Fortran headers under `include/` beside a `src/` folder."""
    if not ((path / "include").is_dir() and (path / "src").is_dir()):
        return False
    for n, file in enumerate((path / "include").rglob("*")):
        if file.suffix in SOURCE_TREE_SUFFIXES:
            return True
        if n >= TREE_SNIFF_FILES:
            break
    return False


def _json_kind(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4096).decode("utf-8", "replace")
    if '"guild"' in head or '"channel"' in head:
        return "discord-export"
    return "gitlab"


def source_for_location(location: str, config: Config) -> SourceConfig:
    """The configured source at `location`, or a new, unofficial one named after it. A local
    path is named by its last part and a hash of the whole (`mbox:petsc-users.mbox-3f2a91`):
    names start every document id, and ids must not show the server's folders."""
    kind = infer_kind(location)
    name = f"{kind}:{location}"
    if "://" not in location and not location.startswith("git@"):
        location = str(Path(location).expanduser().resolve())
        digest = hashlib.sha256(location.encode()).hexdigest()[:6]
        name = f"{kind}:{Path(location).name}-{digest}"
    for configured in config.sources:
        if configured.path == location:
            return configured
    return SourceConfig(name=name, kind=kind, path=location, official=False)


def linked_profile(spec: SourceConfig, profile: Profile) -> Profile:
    """`profile` with its link templates only for an official source: the library's site
    and repository publish its own docs and code, not an arbitrary folder's."""
    if spec.official:
        return profile
    return dataclasses.replace(profile, docs_url="", blob_url="", manpage_url="")


def make_sources(spec: SourceConfig, config: Config) -> list[Source]:
    """Instantiate the ingestor(s) for one source entry.

    A source tree (`git`, or `source` for a folder without git) also gets a docs source
    over its `doc/` folder (named `<name>-doc`), so a whole-repository ingest includes the
    manual, FAQ and release notes, parsed by section with petsc.org anchors.
    """
    common = {"profile": linked_profile(spec, config.profile)}
    max_bytes = config.ingest.max_file_bytes
    if spec.kind == "docs":
        from sciknow.ingest.docs import DocsSource

        return [
            DocsSource(
                name=spec.name, root=spec.path, base_url=spec.base_url, max_file_bytes=max_bytes,
                official=spec.official, exclude=spec.exclude, **common,
            )
        ]  # fmt: skip
    if spec.kind in ("git", "source"):
        return _tree_sources(spec, config)
    return [_community_source(spec, config)]


def _tree_sources(spec: SourceConfig, config: Config) -> list[Source]:
    """A source tree (a git checkout or URL, or a plain folder for `kind = "source"`) and a
    docs source over its `doc/` folder when it has one."""
    from sciknow.ingest.docs import DocsSource
    from sciknow.ingest.gitsrc import GitSource, is_url

    if spec.kind == "source" and is_url(spec.path):
        raise ConfigError(
            f'source {spec.name!r}: kind = "source" reads a local folder; '
            f'use kind = "git" to clone {spec.path}'
        )
    clone_root = config.data_path / "clones"
    profile = linked_profile(spec, config.profile)
    tree = clone_root / spec.name if is_url(spec.path) else Path(spec.path)
    sources: list[Source] = [
        GitSource(
            name=spec.name, location=spec.path, clone_root=clone_root, profile=profile,
            max_file_bytes=config.ingest.max_file_bytes, rev=spec.rev, official=spec.official,
            exclude=[*spec.exclude, "doc/changes/"],
        )
    ]  # fmt: skip
    if spec.kind == "git" or (tree / "doc").is_dir():
        doc_exclude = [p.removeprefix("doc/") for p in spec.exclude if p.startswith("doc/")]
        sources.append(
            DocsSource(
                name=f"{spec.name}-doc", root=str(tree / "doc"), base_url=spec.base_url,
                max_file_bytes=config.ingest.max_file_bytes, official=spec.official,
                exclude=doc_exclude, profile=profile,
            )
        )  # fmt: skip
    return sources


def _community_source(spec: SourceConfig, config: Config) -> Source:
    """Mail, issue and chat sources: unofficial, incremental by time."""
    common = {
        "name": spec.name,
        "location": spec.path,
        "profile": config.profile,
        "maintainers": config.profile.maintainers,
    }
    if spec.kind == "pipermail":
        from sciknow.ingest.pipermail import PipermailSource

        return PipermailSource(**common)
    if spec.kind == "mbox":
        from sciknow.ingest.mbox import MboxSource

        return MboxSource(archive_url=spec.base_url, **common)
    if spec.kind == "gitlab":
        from sciknow.ingest.gitlab import GitLabSource

        return GitLabSource(**common)
    if spec.kind == "discord-export":
        from sciknow.ingest.discord import DiscordExportSource

        return DiscordExportSource(**common)
    raise ConfigError(f"source kind {spec.kind!r} ({spec.name}) is not supported")
