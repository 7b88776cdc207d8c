"""`edgenn datasets`: the datasets bundled with edgenn, usable by name wherever DATA is expected."""

from __future__ import annotations

import argparse

from edgenn.commands.common import print_json
from edgenn.data import list_datasets

NAME = "datasets"
HELP = "list the bundled datasets (usable by name as DATA)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    sets = list_datasets()
    if args.json:
        print_json({"datasets": sets})
        return 0
    columns = ("name", "task", "rows", "features", "label")
    table = [columns] + [tuple(str(d[c]) for c in columns) for d in sets]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print("\nuse a name as DATA, e.g. `edgenn train iris -o iris.npz` (the label column is known)")
    return 0
