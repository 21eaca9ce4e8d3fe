"""The language registry as data: names, aliases, commands filled in per call, what a deployment offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Settings
from service.languages import (
    Invocation,
    Registry,
    UnsupportedLanguage,
    compiled_languages,
    host_etc_paths,
    language_specs,
)
from service.languages.docs import render
from service.models import Language
from tests.languages.programs import PROBES

SETTINGS = Settings()


def test_the_registry_and_the_language_enum_name_the_same_languages() -> None:
    assert [spec.name for spec in language_specs(SETTINGS)] == [language.value for language in Language]


def test_no_two_languages_share_a_name_or_an_alias() -> None:
    names = [name for spec in language_specs(SETTINGS) for name in (spec.name, *spec.aliases)]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", ["python", "python3", "cpp", "java", "go", "js", "javascript", "ts", "R", "sql"])
def test_sandboxfusion_names_resolve(name: str) -> None:
    assert Registry.from_settings(SETTINGS).resolve(name) is not None


def test_java_runs_the_public_class_the_code_declares() -> None:
    java = Registry.from_settings(SETTINGS).specs[Language.java]
    code = "import java.util.*;\n\npublic final class Solution {\n  public static void main(String[] a) {}\n}\n"
    assert java.source_path(code) == "Solution.java"
    assert java.run_argv(Invocation(code, 256)) == [
        "/usr/bin/java",
        "-Xmx192m",
        "-XX:+UseSerialGC",
        "-cp",
        ".",
        "Solution",
    ]
    assert java.source_path("class Helper {}") == "Main.java"


@pytest.mark.parametrize("memory_mb", [16, 512, 4096])
def test_runtime_heap_flags_follow_the_calls_memory(memory_mb: int) -> None:
    specs = Registry.from_settings(SETTINGS).specs
    node = specs[Language.nodejs].run_argv(Invocation("", memory_mb))
    heap = max(16, memory_mb - 64)
    assert f"--max-old-space-size={heap}" in node
    go = specs[Language.go].compile_argv(Invocation("", memory_mb))
    assert go is not None and go[0] == "/usr/bin/env" and f"GOMEMLIMIT={memory_mb}MiB" in go


def test_php_gets_its_opening_tag_only_when_missing() -> None:
    php = Registry.from_settings(SETTINGS).specs[Language.php]
    assert php.source_text("echo 1;") == "<?php\necho 1;"
    assert php.source_text("<?php echo 1;") == "<?php echo 1;"


def test_sql_reads_the_database_sent_with_the_call_else_memory() -> None:
    sql = Registry.from_settings(SETTINGS).specs[Language.sql]
    assert sql.run_argv(Invocation("SELECT 1;", 64, ["notes.txt", "b.sqlite", "a.db"]))[3] == "a.db"
    assert sql.run_argv(Invocation("SELECT 1;", 64))[3:] == [":memory:", ".read main.sql"]


def test_inline_scripts_keep_their_braces() -> None:
    typescript = Registry.from_settings(SETTINGS).specs[Language.typescript]
    argv = typescript.compile_argv(Invocation("let x = 1;", 512))
    assert argv is not None and "{ fileName: source" in argv[2] and argv[3:] == ["main.ts", "main.js"]


def test_sandpit_languages_enables_a_subset_and_always_python_and_bash() -> None:
    registry = Registry.from_settings(Settings(languages="cpp,nodejs"))
    assert registry.enabled == {Language.python, Language.bash, Language.cpp, Language.nodejs}
    assert set(registry.names()) == {
        "python",
        "python3",
        "bash",
        "sh",
        "cpp",
        "c++",
        "nodejs",
        "javascript",
        "js",
        "node",
    }
    with pytest.raises(UnsupportedLanguage, match="unsupported language 'java': not enabled"):
        registry.spec(Language.java)


@pytest.mark.parametrize("wanted", ["python,cobol", "js"])
def test_a_name_that_is_no_languages_own_stops_start_up(wanted: str) -> None:
    with pytest.raises(ValueError, match="unknown languages"):
        Registry.from_settings(Settings(languages=wanted))


def test_a_missing_toolchain_is_unsupported_with_what_is_missing() -> None:
    registry = Registry.from_settings(Settings(cxx_path="/nonexistent/g++"))
    assert Language.cpp not in registry.available()
    with pytest.raises(UnsupportedLanguage, match=r"not installed on this worker.*/nonexistent/g\+\+"):
        registry.spec(Language.cpp)


def test_a_toolchain_is_looked_up_until_it_is_found_then_no_more(tmp_path: Path) -> None:
    compiler = tmp_path / "g++"
    registry = Registry.from_settings(Settings(cxx_path=str(compiler)))
    assert not registry.installed(Language.cpp)
    # Installed while the worker runs: seen on the next call.
    compiler.write_text("")
    assert registry.spec(Language.cpp).name == "cpp"
    # Found once, it is not looked up again (two stats per binary per call, on every call).
    compiler.unlink()
    assert registry.installed(Language.cpp)


def test_toolchain_configuration_in_etc_is_shown_to_the_sandbox() -> None:
    assert "/etc/java-17-openjdk" in host_etc_paths() and "/etc/php" in host_etc_paths()


def test_every_language_with_a_probe_program_in_the_tests_is_in_the_registry() -> None:
    assert set(PROBES) <= {language.value for language in Language}


def test_docs_languages_md_is_generated_from_the_registry() -> None:
    from pathlib import Path

    written = Path(__file__).parents[2] / "docs" / "languages.md"
    assert written.read_text() == render(language_specs(Settings.model_construct())), (
        "docs/languages.md is stale: run `python -m service.languages.docs > docs/languages.md`"
    )


def test_the_compiled_languages_are_those_with_a_compile_command() -> None:
    assert compiled_languages() == {
        Language.cpp,
        Language.c,
        Language.java,
        Language.junit,
        Language.go,
        Language.rust,
        Language.typescript,
        Language.csharp,
        Language.scala,
        Language.d,
    }
