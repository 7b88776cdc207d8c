# Freeze the edgenn runtime into a custom MicroPython firmware: the modules then run from flash, so
# importing them takes no heap and no filesystem space. From a MicroPython checkout:
#   cd ports/esp32 && make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/edgenn/firmware/manifest.py
# The module list is package.json's (the mip manifest, which `edgenn deploy` reads too): one list.
# MicroPython's build runs this file with the current directory set to the file's own directory.
import json

include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, etc.)

with open("package.json") as _manifest:
    for _dest, _source in json.load(_manifest)["urls"]:
        if _dest.endswith(".py"):
            module(_source)
