"""A small FastAPI service with the async bugs people report most often.

Used by `make demo` (README's first command) and by the workshop notebooks:
`async-expert scan examples/buggy_service.py` finds the bugs without running
anything; `async-expert profile examples/buggy_service.py` runs `main()` under
the instrumented event loop and shows which line blocked the loop and for how long.
"""
from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time

import httpx
from fastapi import FastAPI

app = FastAPI()
DB = sqlite3.connect(":memory:", check_same_thread=False)
DB.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
DB.executemany("INSERT INTO orders (total) VALUES (?)", [(i * 1.5,) for i in range(200)])


def checksum(rows: list) -> str:
    time.sleep(0.05)  # stands for a slow, synchronous audit call
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@app.get("/orders")
async def list_orders() -> dict:
    rows = DB.execute("SELECT id, total FROM orders").fetchall()  # sync DB driver on the loop
    return {"count": len(rows), "checksum": checksum(rows)}  # blocks through a helper


@app.get("/report")
async def build_report() -> dict:
    time.sleep(0.2)  # the classic: a thread sleep inside a coroutine
    return {"status": "ready"}


async def audit(order_id: int) -> None:
    await asyncio.sleep(0.01)
    if order_id % 2:
        raise ValueError(f"order {order_id} failed the audit")


@app.post("/orders/{order_id}/audit")
async def start_audit(order_id: int) -> dict:
    asyncio.create_task(audit(order_id))  # fire-and-forget: may be garbage-collected mid-flight
    return {"queued": order_id}


@app.get("/healthz")
async def healthz() -> dict:
    return {"ok": True}


async def main() -> dict:
    """Drive the app in-process: /healthz is slowed down by the blocking endpoints."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        started = time.perf_counter()
        await asyncio.gather(
            client.get("/report"),
            client.get("/orders"),
            client.post("/orders/1/audit"),
            client.get("/healthz"),
        )
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.05)
    print(f"4 concurrent requests took {elapsed:.2f}s; the async endpoints should overlap")
    return {"seconds": elapsed}


if __name__ == "__main__":
    asyncio.run(main())
