"""Shell samples in the documentation: find them, and compare what a command printed with what a page says.

The convention (docs/contributing.md is the user-facing copy of it):

- A sample is a ```console block: `$ ` command lines, each followed by the output the command prints
  (stdout and stderr together, as on a terminal). A `$ ` line ending in `\\` continues on the next line.
- In the expected output, `…` (U+2026) stands for any text within a line, and a line that is only `…`
  for any number of lines (none included). Everything else must match exactly (trailing spaces and
  trailing blank lines aside).
- The virtual board's port is written `/dev/pts/3` (a second board's `/dev/pts/4`, ...) and the test
  broker's address `127.0.0.1:1883`; the test puts the real ones into commands and reads them back as
  these in the output.
- A block that cannot run says so in its title: ```console title="not run: REASON" (shown above the
  block on the site). Any other fenced block must not contain `$ edgenn` lines.
- A non-console block titled with a file name, ```python title="imu.py", is that file in the page's
  working directory before its first sample runs (e.g. a program to copy to the board).
- A block titled "serial transcript" is a session with the board's server, replayed on the page's virtual
  board: first what a soft reset prints, then `> REQUEST` lines, each followed by `< REPLY` (further lines
  of a reply indented by two spaces). `> ` alone sends an empty line, `> (Ctrl-C)` the byte 0x03,
  `\\xNN` a raw byte, and `> 1,1,... (400 bytes)` the text before `...` repeated to 400 bytes.
- A page says what its samples need in one comment, `<!-- samples: TOKEN ... -->` (PAGE_TOKENS below).

This module only parses and matches (tests/host checks it quickly); tests/e2e/test_doc_samples.py runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELLIPSIS = "\u2026"
PORT = "/dev/pts/3"  # how samples spell the virtual board's port (a second board's is /dev/pts/4, ...)
BROKER = "127.0.0.1:1883"  # how samples spell the test broker's address (mqtt://127.0.0.1:1883)
NOT_RUN = "not run:"
TRANSCRIPT = "serial transcript"

# Firmware file names and the chip id each carries (u16 at byte 12 of an ESP32 image).
STAND_IN_IMAGES = {"ESP32_GENERIC-20250415-v1.25.0.bin": 0, "ESP32_GENERIC_S3-20250415-v1.25.0.bin": 9}

# What a page's `<!-- samples: ... -->` comment may ask for, and what it gets.
PAGE_TOKENS = {
    "vboard": "a fresh virtual board (esp32 profile) is running before the first sample, on /dev/pts/3",
    "iris": "iris.npz and iris.enn (edgenn train iris -o iris.npz; edgenn quantize iris.npz --data iris "
    "-o iris.enn) are in the working directory",
    "deployed": "iris.enn is deployed on the virtual board before the first sample (implies vboard, iris)",
    "images": "stand-in MicroPython images (an ESP32 image header with the chip id, nothing to boot) named "
    f"{' and '.join(STAND_IN_IMAGES)} in the working directory, for edgenn flash's checks and --dry-run",
    "broker": "a Mosquitto broker on 127.0.0.1 is running (written 127.0.0.1:1883 in samples)",
    "needs:CMD": "the page is skipped (with the reason) when CMD is not installed, e.g. needs:qemu-xtensa",
}

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^<!--\s*samples:(?P<tokens>.*?)-->\s*$", re.MULTILINE)
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_FILE_NAME = re.compile(r"^[\w][\w.-]*$")


@dataclass
class Command:
    text: str  # the shell command, continuation lines joined
    expected: list[str]  # the documented output, one entry per line
    line: int  # where the `$ ` line is in the page (1-based)


@dataclass
class Sample:
    line: int  # the opening fence
    commands: list[Command]
    not_run: str | None = None  # the reason, for a block titled "not run: ..."


@dataclass
class Exchange:
    send: bytes | None  # None: nothing sent, what the board prints after a soft reset
    expected: list[str]
    line: int


@dataclass
class Page:
    path: Path
    tokens: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # blocks titled with a file name
    transcripts: list[list[Exchange]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # convention broken: the test fails on these

    @property
    def name(self) -> str:
        try:
            return str(self.path.relative_to(ROOT))
        except ValueError:
            return str(self.path)

    def needs(self) -> list[str]:
        return [t.split(":", 1)[1] for t in self.tokens if t.startswith("needs:")]

    def wants(self, token: str) -> bool:
        implied = {"vboard": ("vboard", "deployed"), "iris": ("iris", "deployed")}
        return any(t in self.tokens for t in implied.get(token, (token,)))


def documentation_pages(root: Path = ROOT) -> list[Path]:
    """README.md, every Markdown page of the site, and the READMEs of firmware/ and examples/."""
    return [
        root / "README.md",
        *sorted((root / "docs").rglob("*.md")),
        root / "firmware" / "README.md",
        *sorted((root / "examples").glob("*/README.md")),
    ]


def parse_page(path: Path) -> Page:
    text = path.read_text(encoding="utf-8")
    page = Page(path)
    for m in _DIRECTIVE.finditer(text):
        page.tokens += m.group("tokens").split()
    for token in page.tokens:
        if token not in PAGE_TOKENS and not (token.startswith("needs:") and len(token) > 6):
            page.problems.append(f"unknown samples token {token!r} (known: {', '.join(PAGE_TOKENS)})")
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group("indent"), m.group("fence"), m.group("info").strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if (
                close
                and close.group("fence").startswith(fence[0] * len(fence))
                and not close.group("info").strip()
            ):
                break
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1
        _add_block(page, start + 1, info, body)
    return page


def _add_block(page: Page, line: int, info: str, body: list[str]) -> None:
    lang = info.split()[0] if info else ""
    title = _TITLE.search(info)
    if title and title.group("title") == TRANSCRIPT:
        page.transcripts.append(parse_transcript(body, line + 1))
        return
    if lang != "console" and title and _FILE_NAME.match(title.group("title")):
        name = title.group("title")
        if name in page.files:
            page.problems.append(f"{page.name}:{line}: a second block titled {name!r}")
        page.files[name] = "".join(text + "\n" for text in body)
    if lang != "console":
        for k, text in enumerate(body):
            if text.startswith("$ edgenn"):
                page.problems.append(
                    f"{page.name}:{line + 1 + k}: `$ edgenn` in a ```{lang or ' '} block: samples that show "
                    "output are ```console blocks (or drop the `$ ` for a list of commands)"
                )
                break
        return
    not_run = None
    if title and title.group("title").startswith(NOT_RUN):
        not_run = title.group("title")[len(NOT_RUN) :].strip()
        if not not_run:
            page.problems.append(f"{page.name}:{line}: 'not run:' needs a reason")
    commands: list[Command] = []
    k = 0
    while k < len(body):
        text = body[k]
        if not text.startswith("$ "):
            if not commands:
                page.problems.append(
                    f"{page.name}:{line + 1 + k}: a ```console block starts with a `$ ` line"
                )
                return
            commands[-1].expected.append(text)
            k += 1
            continue
        cmd_line = line + 1 + k
        cmd = text[2:]
        while cmd.endswith("\\") and k + 1 < len(body):
            k += 1
            cmd = cmd[:-1] + "\n" + body[k]
        commands.append(Command(cmd, [], cmd_line))
        k += 1
    if commands:
        page.samples.append(Sample(line, commands, not_run))


def normalize(output: str) -> str:
    """What a terminal shows: no CR, no trailing spaces, no trailing blank lines; every line ends in \\n."""
    lines = [ln.rstrip() for ln in output.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "".join(ln + "\n" for ln in lines)


def template(expected: list[str]) -> re.Pattern:
    """The documented output as a regex: `…` is any text within a line; a line of `…` any lines."""
    parts = []
    lines = normalize("\n".join(expected)).splitlines()
    for ln in lines:
        if ln.strip() == ELLIPSIS:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append("[^\n]*?".join(re.escape(piece) for piece in ln.split(ELLIPSIS)) + r"\n")
    return re.compile("".join(parts))


def _replace_all(text: str, table: dict[str, str]) -> str:
    """Every key by its value in one pass (ports may swap: /dev/pts/3 <-> /dev/pts/4), whole names only."""
    if not table:
        return text
    keys = sorted(table, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(k) for k in keys) + r"(?!\w)")
    return pattern.sub(lambda m: table[m.group(0)], text)


def to_real(text: str, subs: dict[str, str]) -> str:
    """A documented command with the real ports and broker in place of /dev/pts/3... and 127.0.0.1:1883."""
    return _replace_all(text, subs)


def to_doc(text: str, subs: dict[str, str]) -> str:
    """Printed output with the real ports and broker written as the documentation writes them."""
    return _replace_all(text, {real: doc for doc, real in subs.items()})


def doc_port(k: int) -> str:
    """How samples spell the page's k-th virtual board's port (k = 0, 1, ...): /dev/pts/3, /dev/pts/4, ..."""
    return f"/dev/pts/{3 + k}"


def matches(expected: list[str], actual: str, subs: dict[str, str] | None = None) -> bool:
    return template(expected).fullmatch(normalize(to_doc(actual, subs or {}))) is not None


_REPEAT = re.compile(r"^(?P<unit>.*?)\.\.\. \((?P<n>\d+) bytes\)$")


def request_bytes(text: str) -> bytes:
    """What a `> ` line of a transcript sends."""
    if text == "(Ctrl-C)":
        return b"\x03"
    m = _REPEAT.match(text)
    if m:
        unit = m.group("unit").encode()
        n = int(m.group("n"))
        return (unit * (n // len(unit) + 1))[:n] + b"\r\n"
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1") + b"\r\n"


def parse_transcript(body: list[str], first_line: int) -> list[Exchange]:
    exchanges = [Exchange(None, [], first_line)]
    for k, text in enumerate(body):
        if text == ">" or text.startswith("> "):
            exchanges.append(Exchange(request_bytes(text[2:]), [], first_line + k))
        elif text.startswith("< "):
            exchanges[-1].expected.append(text[2:])
        elif len(exchanges) > 1:
            exchanges[-1].expected.append(text[2:] if text.startswith("  ") else text)
        else:
            exchanges[0].expected.append(text)
    return exchanges


def stand_in_image(chip_id: int) -> bytes:
    """The first 4 KB of an ESP32 firmware image: magic 0xE9, segment count, flash mode/size, the chip id."""
    header = bytes([0xE9, 3, 2, 0x20]) + bytes(8) + chip_id.to_bytes(2, "little")
    return header + bytes(4096 - len(header))
