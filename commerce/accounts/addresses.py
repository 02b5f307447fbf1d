"""Shipping addresses: a user's book of them, one of which is the default.

Checkout takes an address by id and stores it as text on the order, so editing or
deleting an address later never changes where a placed order goes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.models import Address
from storage.ids import new_id
from storage.web import Problem

MAX_ADDRESSES = 20
NOT_FOUND = Problem(404, "address-not-found", "You have no address with this id.")


def shipping_text(address: Address) -> str:
    """The address as one block of text, as an order keeps it."""
    lines = [
        f"{address.recipient}, {address.phone}",
        address.line1,
        address.line2,
        ", ".join(p for p in (address.city, address.region, address.postal_code) if p),
        address.country,
    ]
    return "\n".join(line for line in lines if line)


class AddressBook:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def of_user(self, user_id: str) -> list[Address]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Address)
                .where(Address.user_id == user_id)
                .order_by(Address.is_default.desc(), Address.created_at, Address.id)
            )
            return list(rows)

    async def add(self, user_id: str, fields: dict) -> Address:
        """The first address is the default whatever it asks."""
        async with self._writing() as session:
            count = await session.scalar(
                select(func.count()).select_from(Address).where(Address.user_id == user_id)
            )
            if count >= MAX_ADDRESSES:
                raise Problem(409, "too-many-addresses", f"Keep at most {MAX_ADDRESSES} addresses.")
            is_default = bool(fields.pop("is_default", False)) or count == 0
            if is_default:
                await self._clear_default(session, user_id)
            address = Address(
                id=new_id(),
                user_id=user_id,
                is_default=is_default,
                created_at=datetime.now(UTC),
                **fields,
            )
            session.add(address)
        return address

    async def update(self, user_id: str, address_id: str, fields: dict) -> Address:
        async with self._writing() as session:
            address = await self._owned(session, user_id, address_id)
            if fields.pop("is_default", None):
                await self._clear_default(session, user_id)
                address.is_default = True
            for name, value in fields.items():
                setattr(address, name, value)
        return address

    async def delete(self, user_id: str, address_id: str) -> None:
        """Deleting the default makes the oldest remaining address the default."""
        async with self._writing() as session:
            address = await self._owned(session, user_id, address_id)
            await session.delete(address)
            await session.flush()
            if address.is_default:
                successor = await session.scalar(
                    select(Address)
                    .where(Address.user_id == user_id)
                    .order_by(Address.created_at, Address.id)
                    .limit(1)
                )
                if successor is not None:
                    successor.is_default = True

    async def shipping_text(self, user_id: str, address_id: str) -> str:
        """The address for an order; 422 when it is not one of the user's (an input
        error of the checkout, not a missing resource)."""
        async with self._sessions() as session:
            address = await session.get(Address, address_id)
        if address is None or address.user_id != user_id:
            raise Problem(
                422,
                "unknown-address",
                "address_id is not one of your addresses.",
                field="address_id",
            )
        return shipping_text(address)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A transaction in which losing a race on the one-default index answers 409."""
        try:
            async with self._sessions.begin() as session:
                yield session
        except IntegrityError:
            raise Problem(
                409, "address-conflict", "Another change to your addresses came first; retry."
            ) from None

    async def _owned(self, session: AsyncSession, user_id: str, address_id: str) -> Address:
        address = await session.get(Address, address_id, with_for_update=True)
        if address is None or address.user_id != user_id:
            raise NOT_FOUND
        return address

    async def _clear_default(self, session: AsyncSession, user_id: str) -> None:
        await session.execute(
            update(Address)
            .where(Address.user_id == user_id, Address.is_default.is_(True))
            .values(is_default=False)
        )
        await session.flush()
