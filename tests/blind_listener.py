"""A loopback TCP service that answers nothing and records what reaches it: the connections it
accepted and every byte it received (an internal service a hostile redirect aims at)."""
from __future__ import annotations

import socket
import threading


class BlindListener:
    """`with BlindListener() as service:` listens on 127.0.0.1:<free port> until the block ends;
    then `service.connections` and `service.received` say what reached it."""

    def __init__(self):
        self.connections = 0
        self.received = b""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "BlindListener":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()

    def _serve(self) -> None:
        peers: list[socket.socket] = []
        while not self._stop.is_set():
            try:
                peer, _ = self._sock.accept()
                peer.settimeout(0.05)
                peers.append(peer)
                self.connections += 1
            except OSError:  # no one knocked within the timeout
                pass
            for peer in peers:  # a client that sends its request at once is heard here
                try:
                    self.received += peer.recv(65536)
                except OSError:
                    pass
        for peer in peers:
            peer.close()
