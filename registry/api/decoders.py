"""The decoders an organization's devices can use: the built-in library (read-only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from decoders import catalog
from registry.api.auth import Who
from registry.api.context import ApiContext
from registry.api.errors import not_found


class DecoderInfo(BaseModel):
    id: str
    vendor: str
    model: str
    description: str
    protocols: list[str]
    measurements: list[str]
    kind: str = "builtin"


def _builtin(d: catalog.Decoder) -> dict[str, Any]:
    return {"id": d.id, "vendor": d.device.vendor, "model": d.device.model, "description": d.device.description,
            "protocols": list(d.device.protocols), "measurements": list(d.measurements)}


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(tags=["decoders"])

    @r.get("/decoders", response_model=list[DecoderInfo], summary="Decoders available to your devices")
    async def list_decoders(who: Who, q: str | None = Query(None, max_length=100)) -> list[dict[str, Any]]:
        found = [_builtin(d) for d in catalog.load_all().values()]
        if q:
            needle = q.lower()
            found = [d for d in found if needle in f"{d['id']} {d['vendor']} {d['model']}".lower()]
        return found

    @r.get("/decoders/{decoder_id}", response_model=DecoderInfo)
    async def get_decoder(decoder_id: str, who: Who) -> dict[str, Any]:
        d = catalog.get(decoder_id)
        if d is None:
            raise not_found("decoder")
        return _builtin(d)

    return r
