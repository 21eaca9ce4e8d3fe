"""The language registry: which languages exist, which this deployment offers, and by which names.

Every language is one `LanguageSpec` in `definitions.py`. `Registry` is that table as one process
sees it: the languages the operator enabled (`SANDPIT_LANGUAGES`, default all) and, of those, the ones
whose toolchain is installed here. The worker's sandbox asks it for a call's commands, `/run_code`
resolves SandboxFusion's names with it, `GET /v1/languages` and docs/languages.md list it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from service.config import Settings
from service.languages.definitions import language_specs
from service.languages.spec import Invocation, LanguageSpec
from service.models import Language, LanguageRuntime

__all__ = [
    "WORKSPACE",
    "Invocation",
    "LanguageSpec",
    "Registry",
    "UnsupportedLanguage",
    "compiled_languages",
    "host_etc_paths",
    "language_specs",
    "listing",
    "registry",
]

WORKSPACE = "/workspace"
# The service's own tools are Python and bash programs: a deployment cannot do without them.
ALWAYS = frozenset({Language.python, Language.bash})


class UnsupportedLanguage(ValueError):
    pass


@dataclass(frozen=True)
class Registry:
    specs: dict[Language, LanguageSpec]
    enabled: frozenset[Language]
    # The languages whose toolchain was found: looked up once, not on every call (a stat per binary,
    # twice per call). One still missing is looked up again, so a toolchain installed later is seen.
    found: set[Language] = field(default_factory=set, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        specs = {Language(spec.name): spec for spec in language_specs(settings)}
        return cls(specs, enabled_languages(settings.languages, list(specs)))

    def resolve(self, name: str) -> Language | None:
        """The language called `name` (its own name or an alias), enabled here or not; None if none is."""
        if name in self.specs:
            return Language(name)
        return next((language for language, spec in self.specs.items() if name in spec.aliases), None)

    def names(self) -> dict[str, Language]:
        """Every name a caller may use for an enabled language."""
        return {
            name: language
            for language in self.enabled
            for name in (self.specs[language].name, *self.specs[language].aliases)
        }

    def installed(self, language: Language) -> bool:
        if language in self.found:
            return True
        if not all(Path(binary).exists() for binary in self.specs[language].binaries()):
            return False
        self.found.add(language)
        return True

    def available(self) -> list[Language]:
        """Enabled and installed here, in the registry's order."""
        return [language for language in self.specs if language in self.enabled and self.installed(language)]

    def spec(self, language: Language) -> LanguageSpec:
        """The definition of a language this process can run; UnsupportedLanguage if it cannot."""
        if language not in self.enabled:
            raise UnsupportedLanguage(f"unsupported language {language.value!r}: not enabled (SANDPIT_LANGUAGES)")
        spec = self.specs[language]
        if not self.installed(language):
            missing = [binary for binary in spec.binaries() if not Path(binary).exists()]
            raise UnsupportedLanguage(
                f"unsupported language {language.value!r}: its toolchain is not installed on this worker "
                f"(missing {', '.join(missing)})"
            )
        return spec


# The memory the listed commands are filled in for (the service's default).
LISTED_MEMORY_MB = 512


def listing(registry: Registry, available: Iterable[Language] | None = None) -> list[LanguageRuntime]:
    """Every language as `GET /v1/languages` shows it; `available`: what a worker found it runs (None: unknown)."""
    runs = set(available) if available is not None else None
    entries = []
    for language, spec in registry.specs.items():
        call = Invocation("", LISTED_MEMORY_MB)
        entries.append(
            LanguageRuntime(
                name=language,
                available=None if runs is None else language in runs,
                aliases=list(spec.aliases),
                compile=spec.compile_argv(call),
                run=spec.run_argv(call),
            )
        )
    return entries


def enabled_languages(wanted: str, every: list[Language]) -> frozenset[Language]:
    """`SANDPIT_LANGUAGES`: "all" or a comma-separated list of languages' own names (those of
    deploy/local/languages/, which `make up` installs); python and bash always."""
    if wanted.strip().lower() in ("", "all"):
        return frozenset(every)
    chosen = [name.strip() for name in wanted.split(",") if name.strip()]
    known = {language.value for language in every}
    unknown = sorted(name for name in chosen if name not in known)
    if unknown:
        raise ValueError(f"SANDPIT_LANGUAGES names unknown languages: {', '.join(unknown)}")
    return frozenset(ALWAYS | {Language(name) for name in chosen})


def host_etc_paths() -> tuple[str, ...]:
    """The /etc entries every language's toolchain reads (the paths do not depend on any setting)."""
    specs = language_specs(Settings.model_construct())
    return tuple(dict.fromkeys(path for spec in specs for path in spec.host_etc))


def registry(settings: Settings) -> Registry:
    """The registry of these settings, built once per distinct set of the settings it reads."""
    return cached_registry(settings.python_path, settings.bash_path, settings.cxx_path, settings.languages)


@cache
def cached_registry(python_path: str, bash_path: str, cxx_path: str, languages: str) -> Registry:
    settings = Settings.model_construct(
        python_path=python_path, bash_path=bash_path, cxx_path=cxx_path, languages=languages
    )
    return Registry.from_settings(settings)


def compiled_languages() -> frozenset[Language]:
    """The languages with a compile stage (whether one is does not depend on any setting)."""
    return frozenset(Language(spec.name) for spec in language_specs(Settings.model_construct()) if spec.compiled)
