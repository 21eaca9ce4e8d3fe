"""Attacks written in the compiled and JIT languages, which reach the kernel without an interpreter's help:
a fork bomb, network access, and writes outside the workspace, in C, Java, Go, Rust and Node.

Each language has one program whose stdin chooses the attack: `fork` spawns processes forever, `net PORT`
connects to the gateway's own port on the host's loopback and to a public address, `write PATH...` tries
to create each path.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.stack import LocalStack
from tests.languages.programs import PROBES

HOSTILE = {
    "c": r"""#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static const char *reach(const char *ip, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, ip, &to.sin_addr);
    return fd >= 0 && connect(fd, (struct sockaddr *)&to, sizeof to) == 0 ? "connected" : "blocked";
}
int main(void) {
    char mode[16] = "", path[256];
    int port = 0;
    scanf("%15s", mode);
    if (!strcmp(mode, "fork")) for (;;) fork();
    if (!strcmp(mode, "net") && scanf("%d", &port) == 1)
        printf("%s %s\n", reach("127.0.0.1", port), reach("1.1.1.1", 80));
    if (!strcmp(mode, "write"))
        while (scanf("%255s", path) == 1)
            printf("%s %s\n", open(path, O_WRONLY | O_CREAT, 0644) < 0 ? "denied" : "written", path);
    return 0;
}
""",
    "java": """import java.io.*;
import java.net.*;
import java.util.*;

public class Main {
    static String reach(String host, int port) {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(host, port), 2000);
            return "connected";
        } catch (IOException e) {
            return "blocked";
        }
    }

    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        String mode = in.next();
        if (mode.equals("fork")) {
            while (true) {
                try { new ProcessBuilder("/bin/sleep", "100").start(); } catch (IOException e) { }
            }
        }
        if (mode.equals("net")) {
            int port = in.nextInt();
            System.out.println(reach("127.0.0.1", port) + " " + reach("1.1.1.1", 80));
        }
        if (mode.equals("write")) {
            while (in.hasNext()) {
                String path = in.next();
                try (FileOutputStream out = new FileOutputStream(path)) {
                    System.out.println("written " + path);
                } catch (IOException e) {
                    System.out.println("denied " + path);
                }
            }
        }
    }
}
""",
    "go": """package main

import (
\t"fmt"
\t"net"
\t"os"
\t"os/exec"
\t"time"
)

func reach(address string) string {
\tconnection, err := net.DialTimeout("tcp", address, 2*time.Second)
\tif err != nil {
\t\treturn "blocked"
\t}
\tconnection.Close()
\treturn "connected"
}

func main() {
\tvar mode string
\tfmt.Scan(&mode)
\tswitch mode {
\tcase "fork":
\t\tfor {
\t\t\texec.Command("/bin/sleep", "100").Start()
\t\t}
\tcase "net":
\t\tvar port int
\t\tfmt.Scan(&port)
\t\tfmt.Println(reach(fmt.Sprintf("127.0.0.1:%d", port)), reach("1.1.1.1:80"))
\tcase "write":
\t\tvar path string
\t\tfor {
\t\t\tif _, err := fmt.Scan(&path); err != nil {
\t\t\t\tbreak
\t\t\t}
\t\t\tif _, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0644); err != nil {
\t\t\t\tfmt.Println("denied", path)
\t\t\t} else {
\t\t\t\tfmt.Println("written", path)
\t\t\t}
\t\t}
\t}
}
""",
    "rust": """use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn reach(address: &str) -> &'static str {
    let address: SocketAddr = address.parse().unwrap();
    match TcpStream::connect_timeout(&address, Duration::from_secs(2)) {
        Ok(_) => "connected",
        Err(_) => "blocked",
    }
}

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let words: Vec<&str> = input.split_whitespace().collect();
    match words[0] {
        "fork" => loop {
            let _ = std::process::Command::new("/bin/sleep").arg("100").spawn();
        },
        "net" => println!("{} {}", reach(&format!("127.0.0.1:{}", words[1])), reach("1.1.1.1:80")),
        "write" => {
            for path in &words[1..] {
                let verdict = if std::fs::File::create(path).is_ok() { "written" } else { "denied" };
                println!("{} {}", verdict, path);
            }
        }
        _ => {}
    }
}
""",
    "nodejs": """const fs = require("fs");
const net = require("net");
const { spawn } = require("child_process");
const words = fs.readFileSync(0, "utf8").trim().split(/\\s+/);
function reach(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 2000 });
    socket.on("connect", () => { socket.destroy(); resolve("connected"); });
    socket.on("error", () => resolve("blocked"));
    socket.on("timeout", () => { socket.destroy(); resolve("blocked"); });
  });
}
if (words[0] === "fork") {
  for (;;) { try { spawn("/bin/sleep", ["100"]).on("error", () => {}); } catch (e) {} }
} else if (words[0] === "net") {
  Promise.all([reach("127.0.0.1", Number(words[1])), reach("1.1.1.1", 80)]).then((r) => console.log(r.join(" ")));
} else if (words[0] === "write") {
  for (const path of words.slice(1)) {
    try { fs.closeSync(fs.openSync(path, "w")); console.log("written " + path); }
    catch (e) { console.log("denied " + path); }
  }
}
""",
}

LANGUAGES = list(HOSTILE)
BOMB_TIMEOUT_S = 3.0


def batch(api: httpx.Client, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = api.post("/v1/execute/batch", json={"calls": calls})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_fork_bomb_ends_at_its_limits_and_the_next_call_runs(api: httpx.Client, language: str) -> None:
    started = time.monotonic()
    [bomb] = batch(
        api, [{"language": language, "code": HOSTILE[language], "stdin": "fork", "timeout_s": BOMB_TIMEOUT_S}]
    )
    assert time.monotonic() - started < BOMB_TIMEOUT_S + 30, bomb
    assert bomb["status"] in ("timeout", "memory_limit", "error"), bomb
    # Every slot of both workers is free again and runs the language as before.
    hello = {"language": language, "code": PROBES[language], "stdin": "hello"}
    for result in batch(api, [hello] * 8):
        assert (result["status"], result["stdout"]) == ("ok", "Hello, world!\n"), result


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_network_not_even_the_hosts_loopback(api: httpx.Client, stack: LocalStack, language: str) -> None:
    [result] = batch(api, [{"language": language, "code": HOSTILE[language], "stdin": f"net {stack.settings.port}"}])
    assert (result["status"], result["stdout"]) == ("ok", "blocked blocked\n"), result


@pytest.mark.parametrize("language", LANGUAGES)
def test_writes_outside_the_workspace_are_refused_or_vanish(
    api: httpx.Client, stack: LocalStack, language: str
) -> None:
    name = f"sandpit-escape-{uuid.uuid4().hex}"
    refused = [f"/{name}", f"/etc/{name}", f"/usr/{name}", f"../{name}", f"/workspace/../{name}"]
    private = f"/tmp/{name}"
    stdin = "write " + " ".join([*refused, private])
    [result] = batch(api, [{"language": language, "code": HOSTILE[language], "stdin": stdin}])
    assert result["status"] == "ok", result
    lines = result["stdout"].splitlines()
    assert lines == [f"denied {path}" for path in refused] + [f"written {private}"], result
    # The sandbox's /tmp is its own: nothing reached the host's.
    for path in [Path(f"/{name}"), Path(f"/etc/{name}"), Path(f"/usr/{name}"), Path(private)]:
        assert not path.exists()
    assert not list(stack.settings.workspace_root.rglob(name))
