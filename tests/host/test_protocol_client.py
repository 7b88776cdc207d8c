"""Issue 19 items 5 and 6, the host side: the client refuses every control character in a request,
ends a partial line before its first request, and reads numbers by the board's grammar."""

from __future__ import annotations

import pytest
from number_cases import ACCEPTED, REFUSED

from edgenn.commands.predict import _check_numbers
from edgenn.device.client import BoardClient, _encode, parse_number
from edgenn.errors import UserError


@pytest.mark.parametrize("code", [*range(0x20), 0x7F])
def test_every_control_character_is_refused(code):
    with pytest.raises(ValueError, match=f"control character 0x{code:02x}"):
        _encode(f"5.1,3.5{chr(code)}import os")
    assert _encode("5.1,3.5,ü") == "5.1,3.5,ü".encode() + b"\n"


class FakePort:
    """Records what the client writes; the board answers every request line with one reply."""

    def __init__(self) -> None:
        self.written = b""
        self.out = b""
        self.in_waiting = 0

    def write(self, data: bytes) -> int:
        self.written += data
        if data.endswith(b"\n") and data.strip():
            self.out += b'{"class": 0}\n'
        self.in_waiting = len(self.out)
        return len(data)

    def read(self, n: int) -> bytes:
        chunk, self.out = self.out[:n], self.out[n:]
        self.in_waiting = len(self.out)
        return chunk

    def close(self) -> None:
        pass


def test_the_first_request_ends_a_partial_line_first():
    client = BoardClient("fake")
    client._serial = FakePort()
    assert client.request("1,2,3,4") == {"class": 0}
    assert list(client.stream(["5,6,7,8", "1,1,1,1"])) == [{"class": 0}, {"class": 0}]
    assert client._serial.written == b"\n1,2,3,4\n5,6,7,8\n1,1,1,1\n"


@pytest.mark.parametrize("text", ACCEPTED)
def test_host_accepts(text):
    assert parse_number(text) == float(text)
    _check_numbers([text], 1, 1)


@pytest.mark.parametrize("text", REFUSED)
def test_host_refuses(text):
    assert parse_number(text) is None
    with pytest.raises(UserError):
        _check_numbers([text], 1, 1)
