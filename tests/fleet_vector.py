"""The fleet manifest's pinned test vector: host (tests/host/test_fleet_manifest.py) and board
(tests/firmware/test_fleet_agent.py) are both held to it."""

from edgenn.fleet import manifest as mf

KEY = bytes(range(32))

# The test vector the board agent (firmware/edgenn_fleet.py) is held to as well. The signature was
# checked independently with: printf '<the string>' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0001..1f
VECTOR = mf.Manifest(
    group="lab",
    seq=7,
    name="iris",
    size=1234,
    sha256="ab" * 32,
    chunk=512,
    chunks=3,
    boards=("b2", "b1"),
    check_x=(142, 201, 13, 7),
    check_q=(57, -48, -128),
)
VECTOR_STRING = (
    "edgenn-manifest-v1\nlab\n7\niris\n1234\n" + "ab" * 32 + "\n512\n3\nb1,b2\n142,201,13,7;57,-48,-128"
)
VECTOR_SIG = "5877c3974fa31169ba4d769a2c191fe273f86af66d8f3a8e3c919cfce3a70f7a"
