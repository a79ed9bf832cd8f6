"""The bundled platform simulator (aiohttp): see server.py for the routes, runner.py to run it."""
from .runner import start_simulator

__all__ = ["start_simulator"]
