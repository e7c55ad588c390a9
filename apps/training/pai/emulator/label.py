"""How the emulator names itself: in every answer, header, request id and log line."""

LABEL = "Mlab PAI emulator"
LOG_PREFIX = f"[{LABEL}]"
