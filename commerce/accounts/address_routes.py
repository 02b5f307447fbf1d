"""Shipping addresses under /api/me/addresses."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.addresses import AddressBook
from commerce.accounts.auth import require_principal
from commerce.accounts.models import Address
from commerce.accounts.schemas import AddressIn, AddressList, AddressOut, AddressPatchIn
from commerce.accounts.self_routes import edit_allowed
from storage.web import ApiRoutes

ADDRESSES = web.AppKey("addresses", AddressBook)
routes = ApiRoutes()
TAGS = ("addresses",)


def address_out(address: Address) -> AddressOut:
    return AddressOut.model_validate(address, from_attributes=True)


@routes.route(
    "GET",
    "/api/me/addresses",
    summary="Your shipping addresses, the default first",
    tags=TAGS,
    response=AddressList,
    auth=True,
)
async def list_addresses(request: web.Request) -> AddressList:
    principal = await require_principal(request)
    addresses = await request.app[ADDRESSES].of_user(principal.user_id)
    return AddressList(items=[address_out(a) for a in addresses])


@routes.route(
    "POST",
    "/api/me/addresses",
    summary="Add a shipping address",
    tags=TAGS,
    body=AddressIn,
    response=AddressOut,
    status=201,
    auth=True,
    errors=(409, 429),
)
async def add_address(request: web.Request, body: AddressIn) -> AddressOut:
    """Your first address becomes the default; `is_default: true` moves it here."""
    user_id = (await edit_allowed(request)).user_id
    return address_out(await request.app[ADDRESSES].add(user_id, body.model_dump()))


@routes.route(
    "PATCH",
    "/api/me/addresses/{address_id}",
    summary="Change a shipping address",
    tags=TAGS,
    body=AddressPatchIn,
    response=AddressOut,
    auth=True,
    errors=(404, 409, 429),
)
async def update_address(request: web.Request, body: AddressPatchIn) -> AddressOut:
    user_id = (await edit_allowed(request)).user_id
    address = await request.app[ADDRESSES].update(
        user_id,
        request.match_info["address_id"],
        body.model_dump(exclude_unset=True, exclude_none=True),
    )
    return address_out(address)


@routes.route(
    "DELETE",
    "/api/me/addresses/{address_id}",
    summary="Delete a shipping address",
    tags=TAGS,
    status=204,
    auth=True,
    errors=(404, 409, 429),
)
async def delete_address(request: web.Request) -> None:
    """Deleting the default makes your oldest remaining address the default."""
    user_id = (await edit_allowed(request)).user_id
    await request.app[ADDRESSES].delete(user_id, request.match_info["address_id"])
