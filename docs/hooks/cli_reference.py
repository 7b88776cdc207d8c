"""MkDocs hook: the command reference (docs/reference.md) generated from edgenn's own argparse parsers.

The page holds the marker `<!-- cli-reference -->`; at build time it is replaced by one section per
command and subcommand (usage, description, every argument with its help), so the reference cannot
drift from the code. tests/host/test_cli_reference.py checks that every command and option appears.
"""

from __future__ import annotations

import argparse

MARKER = "<!-- cli-reference -->"
PAGE = "reference.md"
WIDTH = 100  # usage lines wrap the same on every machine, whatever the terminal


def command_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every subcommand's parser, depth first, in the order `--help` lists them."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.append(sub)
                found += command_parsers(sub)
    return found


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _section(parser: argparse.ArgumentParser) -> str:
    fmt = argparse.HelpFormatter(parser.prog, width=WIDTH)
    fmt.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    usage = fmt.format_help().strip()
    out = [f"## `{parser.prog}`", "", _cell(parser.description or ""), "", "```text", usage, "```", ""]
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                rows.append((f"[`{name}`](#{_anchor(sub.prog)})", sub.description or ""))
            continue
        invocation = argparse.HelpFormatter(parser.prog)._format_action_invocation(action)
        help_text = argparse.HelpFormatter(parser.prog)._expand_help(action) if action.help else ""
        rows.append((f"`{invocation}`", help_text))
    if rows:
        out += ["| argument | what it does |", "|---|---|"]
        out += [f"| {name} | {_cell(text)} |" for name, text in rows]
        out.append("")
    return "\n".join(out)


def _anchor(prog: str) -> str:
    # MkDocs' toc slug of a heading `edgenn fleet deploy` (code spans keep their words)
    return "-".join(prog.lower().split())


def reference_markdown() -> str:
    from edgenn.cli import build_parser

    parser = build_parser()
    parts = ["## Commands", "", "| command | what it does |", "|---|---|"]
    subs = command_parsers(parser)
    parts += [f"| [`{p.prog}`](#{_anchor(p.prog)}) | {_cell(p.description or '')} |" for p in subs]
    parts.append("")
    parts += [_section(p) for p in subs]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE} lost its {MARKER} marker")
    return markdown.replace(MARKER, reference_markdown())
