"""Courier's /brands surface."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Brands"])


@router.post("/brands")
async def create(request: Request, ws: str = WS) -> Response:
    brands = deps.services(request).brands
    return await deps.idempotent_create(
        request, ws, lambda body: brands.create(ws, body), status=200
    )


@router.get("/brands")
async def list_brands(request: Request, ws: str = WS, cursor: str | None = None) -> Response:
    return deps.json_response(await deps.services(request).brands.list(ws, cursor))


@router.get("/brands/{brand_id}")
async def retrieve(brand_id: str, request: Request, ws: str = WS) -> Response:
    return deps.json_response(await deps.services(request).brands.retrieve(ws, brand_id))


@router.put("/brands/{brand_id}")
async def replace(brand_id: str, request: Request, ws: str = WS) -> Response:
    body = deps.parse_object(await request.body())
    return deps.json_response(await deps.services(request).brands.replace(ws, brand_id, body))


@router.delete("/brands/{brand_id}", status_code=204)
async def delete(brand_id: str, request: Request, ws: str = WS) -> Response:
    await deps.services(request).brands.delete(ws, brand_id)
    return Response(status_code=204)
