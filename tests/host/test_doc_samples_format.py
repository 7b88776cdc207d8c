"""The documentation's sample convention (tests/doc_samples.py): parsing, matching, and every page obeys it.

tests/e2e/test_doc_samples.py runs the samples; this checks quickly what can be checked without running.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_samples import PORT, doc_port, documentation_pages, matches, parse_page, to_doc, to_real

PAGE = """# A page
<!-- samples: vboard needs:qemu-xtensa -->

```console
$ edgenn predict --port /dev/pts/3 1,2 \\
    3,4
setosa  (class 0; … us)
$ edgenn doctor
port          /dev/pts/3
…
ok: ready
```

```console title="not run: needs a real ESP32 on /dev/ttyUSB0"
$ edgenn flash --board esp32 --port /dev/ttyUSB0 fw.bin
done
```

```sh
edgenn train iris -o iris.npz     # commands without output are not samples
```

```python title="imu.py"
print("# x,y,z")
```
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_page_parses_into_samples_commands_and_outputs(tmp_path: Path) -> None:
    page = parse_page(write(tmp_path, PAGE))
    assert page.problems == []
    assert page.tokens == ["vboard", "needs:qemu-xtensa"]
    assert page.needs() == ["qemu-xtensa"] and page.wants("vboard") and not page.wants("iris")
    assert len(page.samples) == 2
    first, second = page.samples
    assert first.not_run is None and first.line == 4
    assert [c.text for c in first.commands] == [
        "edgenn predict --port /dev/pts/3 1,2 \n    3,4",
        "edgenn doctor",
    ]
    assert first.commands[0].expected == ["setosa  (class 0; … us)"]
    assert first.commands[1].line == 8
    assert second.not_run == "needs a real ESP32 on /dev/ttyUSB0"
    assert page.files == {"imu.py": 'print("# x,y,z")\n'}


def test_deployed_implies_a_board_and_the_models(tmp_path: Path) -> None:
    page = parse_page(write(tmp_path, "<!-- samples: deployed -->\n"))
    assert page.wants("vboard") and page.wants("iris") and not page.wants("broker")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("```sh\n$ edgenn train iris -o x.npz\nwrote x.npz\n```\n", "```console"),
        ("```console\nwrote x.npz\n```\n", "starts with a `$ ` line"),
        ('```console title="not run:"\n$ edgenn boards\n```\n', "needs a reason"),
        ("<!-- samples: vboard borker -->\n", "unknown samples token 'borker'"),
    ],
)
def test_broken_conventions_are_reported(tmp_path: Path, text: str, problem: str) -> None:
    problems = parse_page(write(tmp_path, text)).problems
    assert len(problems) == 1 and problem in problems[0]


def test_output_must_match_exactly_outside_the_marks() -> None:
    assert matches(["wrote iris.npz"], "wrote iris.npz\n")
    assert matches(["wrote iris.npz"], "wrote iris.npz   \r\n\n")  # trailing space, CR, blank lines
    assert not matches(["wrote iris.npz"], "wrote iris2.npz\n")
    assert not matches(["wrote iris.npz"], "wrote iris.npz\nwarning: overfits\n")
    assert not matches(["a", "b"], "a\n")
    assert matches([], "")
    assert not matches([], "something\n")


def test_an_ellipsis_is_any_text_in_a_line_and_a_line_of_it_any_lines() -> None:
    assert matches(["final fit: … s; accuracy 98.67%"], "final fit: 0.74 s; accuracy 98.67%\n")
    assert not matches(["final fit: … s; accuracy 98.67%"], "final fit: 0.74 s; accuracy 98.00%\n")
    assert not matches(["x … y"], "x 1\n2 y\n")  # never across lines
    assert matches(["head", "…", "tail"], "head\ntail\n")
    assert matches(["head", "…", "tail"], "head\n1\n2\ntail\n")
    assert not matches(["head", "…", "tail"], "head\n1\n2\n")
    assert matches(["  …"], "anything\nat all\n")  # indentation of a `…` line does not matter
    assert not matches(["a.c"], "abc\n")  # the rest is literal, not a regex


def test_the_port_and_broker_are_written_as_the_docs_spell_them() -> None:
    subs = {PORT: "/dev/pts/17", "127.0.0.1:1883": "127.0.0.1:40123"}
    assert matches(
        ["port /dev/pts/3, broker mqtt://127.0.0.1:1883"],
        "port /dev/pts/17, broker mqtt://127.0.0.1:40123",
        subs,
    )
    assert not matches(["port /dev/pts/3"], "port /dev/pts/18", subs)


@pytest.mark.parametrize("path", documentation_pages(), ids=lambda p: p.name)
def test_every_page_follows_the_convention(path: Path) -> None:
    assert parse_page(path).problems == []


def test_a_serial_transcript_parses_into_what_is_sent_and_what_comes_back(tmp_path: Path) -> None:
    page = parse_page(
        write(
            tmp_path,
            '<!-- samples: deployed -->\n```text title="serial transcript"\n'
            'MPY: soft reboot\n{"ready": true}\n'
            '> 5.1,3.5\n< {"class": 0}\n>\n< {"error": "empty"}\n> \\xff\\xfe x\n< {"error": "bad byte"}\n'
            "> 1,2,... (9 bytes)\n< {}\n> (Ctrl-C)\n< Traceback (most recent call last):\n"
            '    File "main.py", line 1\n  >>>\n```\n',
        )
    )
    assert page.problems == [] and page.samples == []
    (transcript,) = page.transcripts
    assert [e.send for e in transcript] == [
        None,
        b"5.1,3.5\r\n",
        b"\r\n",
        b"\xff\xfe x\r\n",
        b"1,2,1,2,1\r\n",
        b"\x03",
    ]
    assert transcript[0].expected == ["MPY: soft reboot", '{"ready": true}']
    assert transcript[1].expected == ['{"class": 0}'] and transcript[1].line == 5
    assert transcript[-1].expected == [
        "Traceback (most recent call last):",
        '  File "main.py", line 1',
        ">>>",
    ]


def test_the_readme_stays_a_first_screen_and_links() -> None:
    readme = documentation_pages()[0]
    assert readme.name == "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) < 300, "move the material to a page in docs/"


def test_several_boards_may_swap_ports_and_a_port_is_a_whole_name() -> None:
    subs = {doc_port(0): "/dev/pts/4", doc_port(1): "/dev/pts/3"}
    assert to_real("a /dev/pts/3 b /dev/pts/4", subs) == "a /dev/pts/4 b /dev/pts/3"
    assert to_doc("a /dev/pts/4 b /dev/pts/3", subs) == "a /dev/pts/3 b /dev/pts/4"
    assert to_doc("on /dev/pts/17.", {doc_port(0): "/dev/pts/17"}) == "on /dev/pts/3."
    assert to_doc("/dev/pts/17, /dev/pts/170", {doc_port(0): "/dev/pts/17"}) == "/dev/pts/3, /dev/pts/170"
