"""The PAI engine's HTTP side: request signing, the CreateTrainingJob body, the client, and the PAI emulator.

Nothing here imports Django (except the emulator's management command and the pytest plugin), so the same
code runs in a web process, an RQ worker or a plain script.
"""
