"""The broker address users type: `mqtt[s]://[USER[:PASS]@]HOST[:PORT]` (one parser for every command)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgenn.errors import UserError

PORT_MQTT = 1883
PORT_MQTTS = 8883


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    tls: bool = False
    user: str | None = None
    password: str | None = None

    def display(self) -> str:
        """The address without the password: the only form that is ever printed or logged."""
        who = f"{self.user}@" if self.user else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{who}{self.host}:{self.port}"


def parse_broker_url(text: str, password_file: Path | None = None) -> BrokerURL:
    """Parse a broker URL; a password in `password_file` (first line) wins over one in the URL."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UserError(f"broker URL {text!r}: {exc} (expected mqtt://[USER[:PASS]@]HOST[:PORT])") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise UserError(
            f"broker URL {_redact(text)!r} is not mqtt://[USER[:PASS]@]HOST[:PORT] or mqtts://... "
            "(e.g. mqtt://127.0.0.1:1883)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UserError(f"broker URL {_redact(text)!r}: nothing may follow HOST[:PORT]")
    tls = parts.scheme == "mqtts"
    password = unquote(parts.password) if parts.password is not None else None
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, UnicodeDecodeError, IndexError) as exc:
            raise UserError(f"cannot read the broker password from {password_file}: {exc}") from None
    return BrokerURL(
        host=parts.hostname,
        port=port or (PORT_MQTTS if tls else PORT_MQTT),
        tls=tls,
        user=unquote(parts.username) if parts.username else None,
        password=password,
    )


def _redact(text: str) -> str:
    """`text` with any password replaced, for error messages."""
    head, sep, tail = text.rpartition("@")
    if not sep or "://" not in head:
        return text
    scheme, _, who = head.partition("://")
    user = who.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in who else text
