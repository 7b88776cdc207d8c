"""`edgenn fleet join`: make a board (over USB) a member of a fleet, once.

Installs the fleet agent (firmware/edgenn_fleet.py) and the MQTT client (edgenn.fleet.board_lib), both
compiled for the board, and writes the board's fleet configuration (fleet.json) and the key (fleet.key),
each copied as NAME.part, hash-checked on the board and renamed into place (edgenn.device.deploy.upload).
The board's main.py imports the agent only where fleet.json exists. No password or key is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from mpremote.transport import TransportError

from edgenn.device import mpy
from edgenn.device.board_info import BoardInfo, close_board, open_board, probe
from edgenn.device.client import add_port_argument, require_port
from edgenn.device.deploy import firmware_dir, upload
from edgenn.device.swap import board_exec, health_check
from edgenn.errors import UserError
from edgenn.fleet import board_lib
from edgenn.fleet.keys import load_key
from edgenn.fleet.topics import check_name
from edgenn.fleet.url import parse_broker_url

HELP = "join a board to a fleet over USB: installs the agent and MQTT client, writes its fleet config"

AGENT = "edgenn_fleet"
CONFIG = "fleet.json"
KEY = "fleet.key"
# State of an earlier membership: a new join starts clean (another group's seq would refuse this one's).
STALE = ["fleet.seq", "fleet.note", "fleet.pending", "model.enn.part"]
SERVER_MODULES = ("edgenn_server.mpy", "edgenn_server.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_port_argument(parser)
    parser.add_argument(
        "--broker",
        required=True,
        metavar="URL",
        help="mqtt[s]://[USER[:PASS]@]HOST[:PORT] as the board reaches it",
    )
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="F",
        help="the broker password (first line): kept out of the URL",
    )
    parser.add_argument("--group", required=True, metavar="G", help="the fleet group ([A-Za-z0-9_-], 1-32)")
    parser.add_argument(
        "--id", required=True, metavar="NAME", help="this board's id in the group ([A-Za-z0-9_-], 1-32)"
    )
    parser.add_argument(
        "--key", required=True, type=Path, metavar="K", help="the fleet key file (edgenn fleet keygen)"
    )
    parser.add_argument("--wifi", metavar="SSID", help="the Wi-Fi network (boards with network.WLAN)")
    parser.add_argument("--wifi-password", metavar="PW", help="the Wi-Fi password")
    parser.add_argument(
        "--homeassistant", action="store_true", help="publish Home Assistant MQTT discovery (a sensor entity)"
    )
    parser.add_argument(
        "--publish",
        default="every",
        metavar="POLICY",
        help="which predictions to publish: every (default), every:N (every N-th) or change (on a new class)",
    )
    parser.add_argument("--baud", type=int, default=115200, help="serial speed (default 115200)")


def check_policy(text: str) -> str:
    if text in ("every", "change"):
        return text
    if text.startswith("every:") and text[6:].isdigit() and int(text[6:]) >= 1:
        return f"every:{int(text[6:])}"
    raise UserError(f"--publish {text!r}: expected every, every:N (N >= 1) or change")


def board_config(args: argparse.Namespace) -> dict:
    """fleet.json as the agent reads it (contains the broker and Wi-Fi passwords: never printed)."""
    url = parse_broker_url(args.broker, args.password_file)
    return {
        "host": url.host,
        "port": url.port,
        "tls": url.tls,
        "user": url.user,
        "password": url.password,
        "group": check_name(args.group, "--group"),
        "id": check_name(args.id, "--id"),
        "wifi": args.wifi,
        "wifi_password": args.wifi_password,
        "homeassistant": bool(args.homeassistant),
        "publish": check_policy(args.publish),
    }


def compiled(info: BoardInfo, source: Path, board_stem: str) -> tuple[str, bytes]:
    """(board file name, contents): .mpy for the board's format where a compiler matches, else the .py."""
    compiler = mpy.compiler_for(info.mpy) if info.mpy is not None else None
    if compiler is not None:
        return board_stem + ".mpy", mpy.compile_source(compiler, source, info.mpy.arch)
    return board_stem + ".py", source.read_bytes()


def _twin(name: str) -> str:
    return name[:-4] + ".py" if name.endswith(".mpy") else name[:-3] + ".mpy"


def _check_server(info: BoardInfo, port: str) -> None:
    """The agent needs the server of this edgenn (it starts the agent and checks updates at boot): the
    board's edgenn_server must be the one `edgenn deploy` would install now."""
    on_board = next(((n, info.files[n]) for n in SERVER_MODULES if n in info.files), None)
    if on_board is None:
        raise UserError(
            f"the board on {port} has no edgenn runtime; run `edgenn deploy MODEL.enn --port {port}`"
        )
    name, (_size, sha) = on_board
    wanted = compiled(info, firmware_dir() / "edgenn_server.py", "edgenn_server")
    if sha and (wanted[0] != name or hashlib.sha256(wanted[1]).hexdigest() != sha):
        raise UserError(
            f"the board on {port} runs an older edgenn runtime; update it with "
            f"`edgenn deploy MODEL.enn --port {port}`, then join"
        )


def run(args: argparse.Namespace) -> int:
    port = require_port(args.port)
    if args.wifi_password is not None and not args.wifi:
        raise UserError("--wifi-password needs --wifi SSID")
    config = board_config(args)
    key_hex = load_key(args.key).hex()
    url = parse_broker_url(args.broker, args.password_file)
    agent_source = firmware_dir() / f"{AGENT}.py"
    if not agent_source.is_file():
        raise UserError(f"the fleet agent {agent_source} is missing: run from an edgenn checkout")
    client_source = board_lib.client_source()
    transport = open_board(port, args.baud)
    try:
        info = probe(transport, set(SERVER_MODULES))
        _check_server(info, port)
        files = [compiled(info, agent_source, AGENT), compiled(info, client_source, board_lib.BOARD_PATH)]
        board_exec(
            transport,
            "import os\nfor _d in ('lib', 'lib/umqtt'):\n try:\n  os.mkdir(_d)\n except OSError:\n  pass",
        )
        for name, data in files:
            upload(transport, name, data)
            print(f"  {name:<22} {len(data):>6} B  copied (hash checked)")
        stale = [*STALE, *(_twin(name) for name, _ in files)]
        board_exec(
            transport,
            f"import os\nfor _n in {stale!r}:\n try:\n  os.remove(_n)\n except OSError:\n  pass",
        )
        upload(transport, KEY, (key_hex + "\n").encode())
        print(f"  {KEY:<22} {'':>6}    written (the key itself is not shown)")
        upload(transport, CONFIG, json.dumps(config, sort_keys=True).encode())
        print(
            f"  {CONFIG:<22} {'':>6}    written: group {config['group']}, id {config['id']}, {url.display()}"
        )
    except (TransportError, OSError) as exc:
        raise UserError(f"lost the connection to {port} ({exc}); run fleet join again") from None
    finally:
        close_board(transport, restart=True)
    health = health_check(port, None, args.baud)
    if not health.ok:
        raise UserError(f"the board restarted but does not serve as it should: {health.problem}")
    print(
        f"joined: {config['group']}/{config['id']} on {url.display()}; the board serves {health.model!r} "
        f"on serial and reports on edgenn/{config['group']}/{config['id']}/status"
    )
    return 0
