"""Hardware-in-the-loop rigs: rig files, board emulator, fault injection, pytest plugin."""
