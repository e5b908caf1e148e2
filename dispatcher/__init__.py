"""The dispatcher: clients that enqueue code into a pool's Redis Stream and return its Result."""

from dispatcher.aio import AsyncClient
from dispatcher.client import Client
from dispatcher.errors import InvalidJob, NoFleetConfigured, SessionEnded, SessionLost, WaitTimeout
from dispatcher.request import Chunk
from warmfleet.contract.schema import FleetLimits, Result, Status

__all__ = ["AsyncClient", "Chunk", "Client", "FleetLimits", "InvalidJob", "NoFleetConfigured", "Result", "SessionEnded", "SessionLost", "Status",
           "WaitTimeout"]
