"""The options every fleet command that talks to the broker shares: --broker, --group, --password-file."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgenn.fleet.topics import check_name
from edgenn.fleet.url import BrokerURL, parse_broker_url


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        required=True,
        metavar="URL",
        help="the MQTT broker: mqtt[s]://[USER[:PASS]@]HOST[:PORT], e.g. mqtt://127.0.0.1:1883",
    )
    parser.add_argument(
        "--group", required=True, metavar="G", help="the fleet's group name (as at `fleet join`)"
    )
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="F",
        help="read the broker password from the first line of F (keeps it out of the shell history)",
    )


def broker_from_args(args: argparse.Namespace) -> BrokerURL:
    """The parsed URL, after checking the group name (both are UserErrors when wrong)."""
    check_name(args.group, "group")
    return parse_broker_url(args.broker, args.password_file)
