"""Every language Sandpit runs, one definition each: the table the worker, the judge, `/run_code`,
`GET /v1/languages` and docs/languages.md all read.

Adding a language is one `LanguageSpec` here, its member in `service.models.Language`, and its Debian
packages in deploy/local/languages/<name>.txt (installed by `make up` and the worker image). Binaries are
Debian's paths: the sandbox sees the host's (or image's) /usr read-only.
"""

from __future__ import annotations

from service.config import Settings
from service.languages.spec import LanguageSpec, class_named, with_prefix_unless_present

JAVA_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
JUNIT = "/usr/share/java/junit-platform-console-standalone.jar"
# javac finds the other classes the code uses among the call's .java files by itself (-sourcepath).
JAVAC = ("/usr/bin/javac", "-J-Xmx{heap_mb}m", *(f"-J{flag}" for flag in JAVA_FLAGS), "-encoding", "UTF-8")
PUBLIC_CLASS = r"^\s*public\s+(?:final\s+|abstract\s+)*class\s+(\w+)"
JVM_OOM = (b"java.lang.OutOfMemoryError",)
TYPESCRIPT = "/usr/share/nodejs/typescript"
# Types are stripped, not checked, as SandboxFusion's `tsx` runs TypeScript: a syntax error is a
# compile error, a type error is not. One short Node script, so nothing but Debian's node-typescript is needed.
TRANSPILE_TS = (
    f'const ts = require("{TYPESCRIPT}"); const fs = require("fs");'
    " const [source, target] = process.argv.slice(1);"
    ' const out = ts.transpileModule(fs.readFileSync(source, "utf8"), { fileName: source, reportDiagnostics: true,'
    " compilerOptions: { target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS } });"
    " if (out.diagnostics.length) { process.stderr.write(ts.formatDiagnostics(out.diagnostics,"
    ' { getCanonicalFileName: (f) => f, getCurrentDirectory: () => "/workspace", getNewLine: () => "\\n" }));'
    " process.exit(1); }"
    " fs.writeFileSync(target, out.outputText);"
)
GO_ENV = (
    ("GOCACHE", "/tmp/go-cache"),
    ("GOPATH", "/tmp/go"),
    ("GO111MODULE", "off"),
    ("GOTOOLCHAIN", "local"),
    # A soft limit: the collector works harder near the call's memory before the cgroup would kill it.
    ("GOMEMLIMIT", "{memory_mb}MiB"),
)
NODE_OOM = (b"JavaScript heap out of memory",)


def language_specs(settings: Settings) -> tuple[LanguageSpec, ...]:
    """Every language, in the order `GET /v1/languages` and the docs list them."""
    node = ("/usr/bin/node", "--max-old-space-size={heap_mb}", "{main}.js")
    return (
        LanguageSpec(
            "python",
            "Python 3",
            "main.py",
            # As `python3 main.py` (the sandbox's environment is ours alone); -B: /usr is read-only, no .pyc.
            run=(settings.python_path, "-B", "{source}"),
            version=(settings.python_path, "--version"),
            aliases=("python3",),
            memory_markers=(b"MemoryError",),
        ),
        LanguageSpec(
            "pytest",
            "Python 3 tests (pytest)",
            "test_main.py",
            run=(settings.python_path, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "{source}"),
            version=(settings.python_path, "-m", "pytest", "--version"),
            test_runner=True,
            requires=(settings.python_path, "/usr/lib/python3/dist-packages/pytest/__init__.py"),
            notes="The code is a test module; success means every test passed.",
        ),
        LanguageSpec(
            "bash",
            "Bash",
            "main.sh",
            run=(settings.bash_path, "{source}"),
            version=(settings.bash_path, "--version"),
            aliases=("sh",),
        ),
        LanguageSpec(
            "cpp",
            "C++ (g++, C++17)",
            "main.cpp",
            compile=(settings.cxx_path, "-std=c++17", "-O2", "-pipe", "-o", "main", "{source}"),
            run=("./main",),
            version=(settings.cxx_path, "--version"),
            aliases=("c++",),
            requires=(settings.cxx_path,),
        ),
        LanguageSpec(
            "c",
            "C (gcc, GNU C17)",
            "main.c",
            compile=("/usr/bin/gcc", "-std=gnu17", "-O2", "-pipe", "-o", "main", "{source}", "-lm"),
            run=("./main",),
            version=("/usr/bin/gcc", "--version"),
            requires=("/usr/bin/gcc",),
        ),
        LanguageSpec(
            "java",
            "Java (OpenJDK)",
            "{main}.java",
            compile=(*JAVAC, "-sourcepath", ".", "-d", ".", "{source}"),
            run=("/usr/bin/java", "-Xmx{heap_mb}m", "-XX:+UseSerialGC", "-cp", ".", "{main}"),
            version=("/usr/bin/java", "-version"),
            heap_reserve_mb=64,
            reserved_address_space_mb=3072,
            memory_markers=JVM_OOM,
            host_etc=("/etc/java-17-openjdk",),
            main_of=class_named(PUBLIC_CLASS),
            notes="The file is named after the public class (else Main), which is the one run.",
        ),
        LanguageSpec(
            "junit",
            "Java tests (JUnit 5)",
            "{main}.java",
            compile=(*JAVAC, "-cp", JUNIT, "-sourcepath", ".", "-d", ".", "{source}"),
            run=(
                "/usr/bin/java",
                "-Xmx{heap_mb}m",
                "-XX:+UseSerialGC",
                "-jar",
                JUNIT,
                "--class-path",
                ".",
                "--scan-class-path",
                "--disable-banner",
                "--disable-ansi-colors",
                "--details=tree",
            ),
            version=("/usr/bin/java", "-version"),
            heap_reserve_mb=64,
            reserved_address_space_mb=3072,
            memory_markers=JVM_OOM,
            host_etc=("/etc/java-17-openjdk",),
            main_of=class_named(PUBLIC_CLASS),
            test_runner=True,
            requires=("/usr/bin/javac", "/usr/bin/java", JUNIT),
            notes="The code is a JUnit 5 test class (Jupiter API); success means every test passed.",
        ),
        LanguageSpec(
            "go",
            "Go",
            "main.go",
            compile=("/usr/bin/go", "build", "-o", "main", "{source}"),
            run=("./main",),
            version=("/usr/bin/go", "version"),
            aliases=("golang",),
            env=GO_ENV,
            reserved_address_space_mb=1024,
            memory_markers=(b"runtime: out of memory",),
            requires=("/usr/bin/go",),
        ),
        LanguageSpec(
            "go_test",
            "Go tests (go test)",
            "main_test.go",
            run=("/usr/bin/go", "test", "-count=1", "."),
            version=("/usr/bin/go", "version"),
            env=GO_ENV,
            reserved_address_space_mb=1024,
            test_runner=True,
            notes="The code is a _test.go file of package main, beside the call's files; success means it passed.",
        ),
        LanguageSpec(
            "rust",
            "Rust (rustc, edition 2021)",
            "main.rs",
            compile=("/usr/bin/rustc", "--edition", "2021", "-O", "-o", "main", "{source}"),
            run=("./main",),
            version=("/usr/bin/rustc", "--version"),
            memory_markers=(b"memory allocation of",),
            requires=("/usr/bin/rustc",),
        ),
        LanguageSpec(
            "nodejs",
            "JavaScript (Node.js)",
            "main.js",
            run=node,
            version=("/usr/bin/node", "--version"),
            aliases=("javascript", "js", "node"),
            heap_reserve_mb=64,
            reserved_address_space_mb=1024,
            memory_markers=NODE_OOM,
        ),
        LanguageSpec(
            "typescript",
            "TypeScript (transpiled, run by Node.js)",
            "main.ts",
            compile=("/usr/bin/node", "-e", TRANSPILE_TS, "{source}", "{main}.js"),
            run=node,
            version=("/usr/bin/tsc", "--version"),
            aliases=("ts",),
            heap_reserve_mb=64,
            reserved_address_space_mb=1024,
            memory_markers=NODE_OOM,
            requires=("/usr/bin/node", f"{TYPESCRIPT}/lib/typescript.js"),
            notes="Types are stripped, not checked (as SandboxFusion's tsx): only syntax errors fail compilation.",
        ),
        LanguageSpec(
            "php",
            "PHP (CLI)",
            "main.php",
            run=("/usr/bin/php", "-d", "memory_limit={memory_mb}M", "-f", "{source}"),
            version=("/usr/bin/php", "--version"),
            memory_markers=(b"Allowed memory size of",),
            host_etc=("/etc/php",),
            source_of=with_prefix_unless_present("<?php\n", "<?php"),
            notes="`<?php` is added when the code has no opening tag.",
        ),
        LanguageSpec(
            "ruby",
            "Ruby",
            "main.rb",
            run=("/usr/bin/ruby", "{source}"),
            version=("/usr/bin/ruby", "--version"),
            aliases=("rb",),
            memory_markers=(b"failed to allocate memory",),
        ),
        LanguageSpec(
            "lua",
            "Lua 5.4",
            "main.lua",
            run=("/usr/bin/lua5.4", "{source}"),
            version=("/usr/bin/lua5.4", "-v"),
            memory_markers=(b"not enough memory",),
        ),
        LanguageSpec(
            "perl",
            "Perl 5",
            "main.pl",
            run=("/usr/bin/perl", "{source}"),
            version=("/usr/bin/perl", "-e", "print qq(perl $^V\\n)"),
            memory_markers=(b"Out of memory",),
        ),
        LanguageSpec(
            "csharp",
            "C# (Mono)",
            "main.cs",
            compile=("/usr/bin/mcs", "-optimize+", "-out:main.exe", "{source}"),
            run=("/usr/bin/mono", "main.exe"),
            version=("/usr/bin/mono", "--version"),
            aliases=("cs", "c#"),
            env=(("MONO_GC_PARAMS", "max-heap-size={heap_mb}m"),),
            heap_reserve_mb=32,
            reserved_address_space_mb=1024,
            memory_markers=(b"OutOfMemoryException",),
            host_etc=("/etc/mono",),
        ),
        LanguageSpec(
            "R",
            "R",
            "main.R",
            run=("/usr/bin/Rscript", "{source}"),
            version=("/usr/bin/Rscript", "--version"),
            aliases=("r",),
            memory_markers=(b"cannot allocate vector",),
            host_etc=("/etc/R",),
        ),
        LanguageSpec(
            "scala",
            "Scala 2 (on the JVM)",
            "{main}.scala",
            compile=(
                "/usr/bin/scalac",
                "-J-Xmx{heap_mb}m",
                *(f"-J{flag}" for flag in JAVA_FLAGS),
                "-d",
                ".",
                "{source}",
            ),
            run=("/usr/bin/scala", "-nc", "-J-Xmx{heap_mb}m", "-J-XX:+UseSerialGC", "-cp", ".", "{main}"),
            version=("/usr/bin/scala", "-version"),
            heap_reserve_mb=64,
            reserved_address_space_mb=3072,
            memory_markers=JVM_OOM,
            host_etc=("/etc/java-17-openjdk",),
            main_of=class_named(r"^\s*object\s+(\w+)"),
            notes="The first top-level object (else Main) is the one run.",
        ),
        LanguageSpec(
            "d",
            "D (gdc)",
            "main.d",
            compile=("/usr/bin/gdc", "-O2", "-pipe", "-o", "main", "{source}"),
            run=("./main",),
            version=("/usr/bin/gdc", "--version"),
            memory_markers=(b"OutOfMemoryError",),
            requires=("/usr/bin/gdc",),
        ),
        LanguageSpec(
            "sql",
            "SQL (SQLite)",
            "main.sql",
            run=("/usr/bin/sqlite3", "-bail", "-batch", "{database}", ".read {source}"),
            version=("/usr/bin/sqlite3", "--version"),
            aliases=("sqlite",),
            notes="Runs the code against the first *.db / *.sqlite / *.sqlite3 file sent with the call "
            "(by name), else an in-memory database; output in sqlite3's default list mode.",
        ),
    )
