"""Talking to boards: serial protocol client, deploy (mpy-cross + mpremote), flash (esptool), vboard."""
