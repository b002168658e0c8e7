"""A FastAPI application for the tests (module level, so FastAPI can resolve its annotations)."""

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

api = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@api.post("/items")
async def create(item: Item) -> dict[str, Any]:
    return {"name": item.name, "total": item.price * 2}


@api.get("/sync")
def sync_endpoint() -> dict[str, str]:  # runs in anyio's thread pool
    return {"ok": "yes"}
