"""One table of values for the one grammar of a number on the wire: the host (edgenn.device.client.NUMBER,
predict's checks) and the board (firmware/edgenn_server.py) must accept exactly the same ones."""

ACCEPTED = [
    "0", "7", "-7", "+7", "007", "1.", "-1.", ".5", "-.5", "+.5", "1.25", "1e5", "1E5", "1e+5", "1e-5",
    "-1.5e-3", ".5e2", "5.e2", "123456789012345678901234567890", "1.2345678901234567e-100",
]
REFUSED = [
    "e", "E", ".", "-", "+", "-.", "e5", ".e5", "-e5", "1e", "1e+", "1e-", "1.5e", "1..5", "1.2.3", "--1",
    "+-1", "1e5.5", "1e1e1", "nan", "inf", "-inf", "infinity", "1_0", "0x10", "1 2", "1e999", "-1e999",
    "1" * 33,
]
