"""One probe program per language, whose behaviour its stdin chooses, and one that does not compile or parse.

The probe reads `MODE [ARG]` from stdin: `hello` prints "Hello, world!", `echo X` prints X, `exit` exits
with 3, `crash` fails at run time, `loop` never ends, `alloc` takes memory until something stops it. One
source per language means one compile per language for every behaviour (the compile cache serves the
rest), which keeps the suite quick and exercises the cache on the way.
"""

from __future__ import annotations

PROBES = {
    "python": """import sys
words = sys.stdin.read().split()
mode, arg = (words + ["", ""])[:2]
if mode == "hello":
    print("Hello, world!")
elif mode == "echo":
    print(arg)
elif mode == "exit":
    sys.exit(3)
elif mode == "crash":
    1 / 0
elif mode == "loop":
    while True:
        pass
elif mode == "alloc":
    keep = []
    while True:
        keep.append(bytearray(1 << 20))
""",
    "bash": """read -r mode arg
case "$mode" in
  hello) echo "Hello, world!" ;;
  echo) echo "$arg" ;;
  exit) exit 3 ;;
  crash) no_such_command_here ;;
  loop) while :; do :; done ;;
  alloc) x=xxxxxxxx; while :; do x="$x$x"; done ;;
esac
""",
    "c": r"""#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    char mode[16] = "", arg[256] = "";
    if (scanf("%15s %255s", mode, arg) < 1) return 0;
    if (!strcmp(mode, "hello")) puts("Hello, world!");
    else if (!strcmp(mode, "echo")) puts(arg);
    else if (!strcmp(mode, "exit")) return 3;
    else if (!strcmp(mode, "crash")) { volatile int *p = NULL; *p = 1; }
    else if (!strcmp(mode, "loop")) { volatile unsigned long n = 0; for (;;) n++; }
    else if (!strcmp(mode, "alloc")) for (;;) { char *p = malloc(1 << 20); if (p) memset(p, 1, 1 << 20); }
    return 0;
}
""",
    "cpp": r"""#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>
int main() {
    std::string mode, arg;
    std::cin >> mode >> arg;
    if (mode == "hello") std::cout << "Hello, world!" << std::endl;
    else if (mode == "echo") std::cout << arg << std::endl;
    else if (mode == "exit") return 3;
    else if (mode == "crash") throw std::runtime_error("boom");
    else if (mode == "loop") { volatile unsigned long n = 0; for (;;) n++; }
    else if (mode == "alloc") { std::vector<std::vector<char>> keep; for (;;) keep.emplace_back(1 << 20, 'x'); }
}
""",
    "java": """import java.util.*;

public class Probe {
    static void spin() { long n = 0; while (true) { n++; } }
    static void hoard() { List<long[]> keep = new ArrayList<>(); while (true) { keep.add(new long[1 << 17]); } }

    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        String mode = in.hasNext() ? in.next() : "";
        if (mode.equals("hello")) System.out.println("Hello, world!");
        else if (mode.equals("echo")) System.out.println(in.next());
        else if (mode.equals("exit")) System.exit(3);
        else if (mode.equals("crash")) System.out.println(args[5]);
        else if (mode.equals("loop")) spin();
        else if (mode.equals("alloc")) hoard();
    }
}
""",
    "go": """package main

import (
\t"fmt"
\t"os"
)

func main() {
\tvar mode, arg string
\tfmt.Scan(&mode, &arg)
\tswitch mode {
\tcase "hello":
\t\tfmt.Println("Hello, world!")
\tcase "echo":
\t\tfmt.Println(arg)
\tcase "exit":
\t\tos.Exit(3)
\tcase "crash":
\t\tvar m map[string]int
\t\tm[arg] = 1
\tcase "loop":
\t\tfor len(os.Args) < 100 {
\t\t}
\tcase "alloc":
\t\tvar keep [][]byte
\t\tfor {
\t\t\tb := make([]byte, 1<<20)
\t\t\tfor i := range b {
\t\t\t\tb[i] = 1
\t\t\t}
\t\t\tkeep = append(keep, b)
\t\t}
\t}
}
""",
    "rust": """use std::io::Read;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let mut words = input.split_whitespace();
    let mode = words.next().unwrap_or("");
    let arg = words.next().unwrap_or("");
    match mode {
        "hello" => println!("Hello, world!"),
        "echo" => println!("{}", arg),
        "exit" => std::process::exit(3),
        "crash" => {
            let v: Vec<usize> = Vec::new();
            println!("{}", v[arg.len() + 1]);
        }
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = n.wrapping_add(1);
                if n == u64::MAX { println!("{}", n); }
            }
        }
        "alloc" => {
            let mut keep = Vec::new();
            loop { keep.push(vec![1u8; 1 << 20]); }
        }
        _ => {}
    }
}
""",
    "nodejs": """const [mode, arg] = require("fs").readFileSync(0, "utf8").trim().split(/\\s+/);
if (mode === "hello") console.log("Hello, world!");
else if (mode === "echo") console.log(arg);
else if (mode === "exit") process.exit(3);
else if (mode === "crash") null.boom();
else if (mode === "loop") for (;;) {}
else if (mode === "alloc") { const keep = []; for (;;) keep.push(new Array(1 << 20).fill(7)); }
""",
    "typescript": """declare const require: any;
declare const process: any;
const [mode, arg]: string[] = require("fs").readFileSync(0, "utf8").trim().split(/\\s+/);
function spin(): never { for (;;) {} }
if (mode === "hello") console.log("Hello, world!");
else if (mode === "echo") console.log(arg);
else if (mode === "exit") process.exit(3);
else if (mode === "crash") (null as any).boom();
else if (mode === "loop") spin();
else if (mode === "alloc") { const keep: number[][] = []; for (;;) keep.push(new Array(1 << 20).fill(7)); }
""",
    # No `<?php` tag: the registry adds it, as SandboxFusion does.
    "php": """[$mode, $arg] = array_pad(preg_split('/\\s+/', trim(stream_get_contents(STDIN))), 2, "");
if ($mode === "hello") echo "Hello, world!\\n";
elseif ($mode === "echo") echo $arg, "\\n";
elseif ($mode === "exit") exit(3);
elseif ($mode === "crash") throw new Exception("boom");
elseif ($mode === "loop") while (true) {}
elseif ($mode === "alloc") { $keep = []; while (true) $keep[] = str_repeat("x", 1 << 20); }
""",
    "ruby": """mode, arg = STDIN.read.split
case mode
when "hello" then puts "Hello, world!"
when "echo" then puts arg
when "exit" then exit 3
when "crash" then nil.upcase
when "loop" then loop {}
when "alloc" then keep = []; loop { keep << "x" * (1 << 20) }
end
""",
    "lua": """local mode, arg = io.read("a"):match("(%S+)%s*(%S*)")
if mode == "hello" then print("Hello, world!")
elseif mode == "echo" then print(arg)
elseif mode == "exit" then os.exit(3)
elseif mode == "crash" then local t = nil; print(t.x)
elseif mode == "loop" then while true do end
elseif mode == "alloc" then
  local keep, i = {}, 0
  while true do i = i + 1; keep[i] = string.rep(tostring(i), 1 << 18) end
end
""",
    "perl": """my ($mode, $arg) = split ' ', do { local $/; <STDIN> };
if ($mode eq "hello") { print "Hello, world!\\n" }
elsif ($mode eq "echo") { print "$arg\\n" }
elsif ($mode eq "exit") { exit 3 }
elsif ($mode eq "crash") { die "boom\\n" }
elsif ($mode eq "loop") { 1 while 1 }
elsif ($mode eq "alloc") { my @keep; push @keep, "x" x (1 << 20) while 1 }
""",
    "csharp": """using System;
using System.Collections.Generic;

class Program {
    static void Main() {
        var words = Console.In.ReadToEnd().Split((char[])null, StringSplitOptions.RemoveEmptyEntries);
        string mode = words.Length > 0 ? words[0] : "", arg = words.Length > 1 ? words[1] : "";
        if (mode == "hello") Console.WriteLine("Hello, world!");
        else if (mode == "echo") Console.WriteLine(arg);
        else if (mode == "exit") Environment.Exit(3);
        else if (mode == "crash") Console.WriteLine(words[words.Length + 5]);
        else if (mode == "loop") { long n = 0; while (true) n++; }
        else if (mode == "alloc") {
            var keep = new List<byte[]>();
            while (true) { var b = new byte[1 << 20]; for (int i = 0; i < b.Length; i += 4096) b[i] = 1; keep.Add(b); }
        }
    }
}
""",
    "R": """words <- scan(file("stdin"), what = "", quiet = TRUE)
mode <- if (length(words) > 0) words[1] else ""
arg <- if (length(words) > 1) words[2] else ""
if (mode == "hello") {
  cat("Hello, world!\\n")
} else if (mode == "echo") {
  cat(arg, "\\n", sep = "")
} else if (mode == "exit") {
  quit(status = 3)
} else if (mode == "crash") {
  stop("boom")
} else if (mode == "loop") {
  repeat {}
} else if (mode == "alloc") {
  keep <- list()
  repeat keep[[length(keep) + 1]] <- runif(1e6)
}
""",
    "scala": """object Probe {
  def main(args: Array[String]): Unit = {
    val words = scala.io.Source.stdin.mkString.split("\\\\s+").filter(_.nonEmpty)
    words.headOption.getOrElse("") match {
      case "hello" => println("Hello, world!")
      case "echo" => println(words(1))
      case "exit" => sys.exit(3)
      case "crash" => println(words(10))
      case "loop" => var n = 0L; while (true) n += 1
      case "alloc" =>
        val keep = scala.collection.mutable.ArrayBuffer[Array[Long]]()
        while (true) keep += new Array[Long](1 << 17)
      case _ =>
    }
  }
}
""",
    "d": """import std.stdio, std.array;
import core.stdc.stdlib : exit;

void main() {
    auto words = stdin.byLineCopy.array.join(" ").split;
    auto mode = words.length > 0 ? words[0] : "";
    if (mode == "hello") writeln("Hello, world!");
    else if (mode == "echo") writeln(words[1]);
    else if (mode == "exit") exit(3);
    else if (mode == "crash") writeln(words[words.length + 1]);
    else if (mode == "loop") { ulong n; while (true) { n++; } }
    else if (mode == "alloc") { ubyte[][] keep; while (true) { auto b = new ubyte[1 << 20]; b[] = 1; keep ~= b; } }
}
""",
}

SYNTAX_ERRORS = {
    "python": "def f(:\n",
    "bash": "if then fi\n",
    "c": "int main( { return 0; }\n",
    "cpp": "int main( { return 0; }\n",
    "java": "public class Main { void f( }\n",
    "go": "package main\nfunc main() {\n",
    "rust": "fn main() { let x = ; }\n",
    "nodejs": "let x = ;\n",
    "typescript": "let x: number = ;\n",
    "php": "$x = ;\n",
    "ruby": "def f(\n",
    "lua": "x = = 1\n",
    "perl": "my $x = ;\n",
    "csharp": "class P { static void Main() { int x = ; } }\n",
    "R": "x <- )\n",
    "scala": "object Main { def main(a: Array[String]): Unit = { val x = } }\n",
    "d": "void main() { int x = ; }\n",
    "sql": "SELEC 1;\n",
}

# SQL has no stdin or exit status to speak of: its own programs for the same behaviours.
SQL = {
    "hello": "SELECT 'Hello, world!';",
    "crash": "SELECT * FROM no_such_table;",
    "loop": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;",
    "alloc": "SELECT length(randomblob(400000000));",
}

COMPILED = ("c", "cpp", "java", "go", "rust", "typescript", "csharp", "scala", "d")
# Languages whose probe is a program reading stdin: all but SQL.
PROBED = tuple(PROBES)
