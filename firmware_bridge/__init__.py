"""The wire between the twin and a board: MAVLink 2 dialect, codec and transports."""
