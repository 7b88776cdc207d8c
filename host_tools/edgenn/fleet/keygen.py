"""`edgenn fleet keygen -o fleet.key`: a new random fleet key (mode 0600)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgenn.fleet.keys import generate_key

HELP = "make a random fleet key (signs model updates); keep it like a password"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, help="the key file to create (mode 0600)")


def run(args: argparse.Namespace) -> int:
    generate_key(args.output)
    print(f"wrote {args.output} (mode 0600): give it to `edgenn fleet join` and `edgenn fleet deploy`")
    return 0
