"""The workshop's FastAPI service, fixed (see :mod:`workshop_app` for the mistakes).

- ``/report``: ``await asyncio.sleep`` stands for an async database driver; a sync driver
  would go in a plain ``def`` endpoint (FastAPI runs those in its threadpool).
- ``/login``: the hash runs in a worker thread (``hashlib`` releases the GIL while hashing).
- ``/rates``: one ``httpx.AsyncClient`` for the app's lifetime, created in the lifespan
  (https://www.python-httpx.org/async/#opening-and-closing-clients,
  https://fastapi.tiangolo.com/advanced/events/).
"""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with httpx.AsyncClient(base_url=app.state.upstream, timeout=5) as client:
        app.state.rates_client = client
        yield


app = FastAPI(title="workshop shop (fixed)", lifespan=lifespan)


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


@app.get("/report")
async def report() -> dict:
    await asyncio.sleep(0.1)  # the report query, through an async driver
    return {"rows": 42}


@app.post("/login")
async def login(user: str, password: str) -> dict:
    digest = await asyncio.to_thread(hashlib.pbkdf2_hmac, "sha256", password.encode(), user.encode(), 200_000)
    return {"user": user, "token": digest.hex()[:16]}


@app.get("/rates")
async def rates(request: Request) -> dict:
    response = await request.app.state.rates_client.get("/rates")
    return response.json()
