"""`edgenn estimate MODEL.enn --board B`: instructions and estimated time per inference, from the board's
own machine code run in an emulator (edgenn.machinecode.estimate)."""

from __future__ import annotations

import argparse
import sys

from edgenn import modelfile
from edgenn.boards import load_board
from edgenn.commands.common import print_json
from edgenn.errors import UserError
from edgenn.machinecode import KERNELS, MachineCodeError
from edgenn.machinecode.estimate import CORES, estimate

NAME = "estimate"
HELP = "count the instructions one inference executes in the board's own machine code; estimate its time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help=".enn model from `edgenn quantize`")
    parser.add_argument(
        "--board",
        required=True,
        choices=sorted(CORES),
        help="board profile: xtensawin boards run under qemu-xtensa, rv32imc boards under unicorn",
    )
    parser.add_argument(
        "--kernel",
        default=None,
        choices=sorted(KERNELS),
        help="device kernel to run (default: the one `edgenn deploy` installs on that board, asm where it "
        "installs the asm kernel, else viper; kernels are registered in edgenn.machinecode.kernels)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    model = modelfile.load(args.model)
    board = load_board(args.board)
    if not args.json:
        print(f"running {len(model.layers)} layers as {board.mpy_arch} machine code ...", file=sys.stderr)
    try:
        result = estimate(model, board, args.kernel)
    except MachineCodeError as exc:
        raise UserError(f"{exc}") from None
    if args.json:
        print_json({"model": args.model, **result})
        return 0
    print(f"{args.model} on {board.name} ({result['core']}, {result['arch']}), kernel {result['kernel']}:")
    print(f"  {'layer':<18} {'MACs':>8} {'instructions':>13} {'per MAC':>8}")
    for i, layer in enumerate(result["layers"]):
        shape = f"{i}: {layer['n_in']}x{layer['n_out']} {layer['activation']}"
        print(
            f"  {shape:<18} {layer['macs']:>8} {layer['kernel_instructions']:>13} "
            f"{layer['instructions_per_mac']:>8.2f}"
        )
    print(
        f"  {'total':<18} {result['macs']:>8} {result['kernel_instructions']:>13} "
        f"{result['instructions_per_mac']:>8.2f}"
    )
    print(
        f"  estimated {result['us']} us per inference at {result['clock_mhz']} MHz "
        f"({result['cycles']} cycles; an estimate from a cycle model per instruction class, "
        "see docs/machinecode.md)"
    )
    fe = result.get("frontend")
    if fe:
        print(
            f"  front end ({fe['frontend']}): {fe['instructions']} instructions per window, "
            f"estimated {fe['us']} us (viper machine code; not in the total above)"
        )
    print(f"  not counted: {result['uncounted']}")
    return 0
