"""The dispatcher: clients that enqueue code into a pool's Redis Stream and return its Result."""

from dispatcher.aio import AsyncClient, AsyncSession
from dispatcher.client import Client, Session
from dispatcher.errors import InvalidJob, NoFleetConfigured, SessionEnded, SessionLost, WaitTimeout
from dispatcher.request import Chunk
from warmfleet.contract.schema import FleetLimits, Result, Status

__all__ = ["AsyncClient", "AsyncSession", "Chunk", "Client", "FleetLimits", "InvalidJob", "NoFleetConfigured", "Result", "Session", "SessionEnded", "SessionLost", "Status",
           "WaitTimeout"]
