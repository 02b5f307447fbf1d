"""`streamcart demo`: demo accounts, a shop with products, printed with their logins."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select

from commerce.accounts.models import Role, User
from commerce.accounts.tokens import Principal
from commerce.catalog.schemas import ProductIn
from commerce.catalog.service import CatalogService
from commerce.shops.service import ShopService
from live.app import backend_urls, build_accounts
from live.settings import Settings
from signaling.routes import WHIP_PATH
from storage.backends import Backends

# example.com is reserved for examples (RFC 2606) and, unlike .local or .test, passes
# the email validator that login uses.
SELLER = "seller@demo.example.com"
DEMO_ACCOUNTS = (
    (SELLER, "Demo Shop Owner", Role.SELLER),
    ("buyer@demo.example.com", "Demo Buyer", Role.BUYER),
    ("admin@demo.example.com", "Demo Admin", Role.ADMIN),
)
RTMP_PORT_CHOSEN_AT_START = (
    "the RTMP port is chosen as the server starts (STREAMCART_RTMP_PORT=0): "
    "a live session's stream.server_url has it"
)
DEMO_PRODUCTS = (
    {
        "name": "Áo thun cổ tròn",
        "category": "fashion",
        "base_price": 159_000,
        "variants": [
            {"sku": "TEE-S", "options": {"size": "S"}, "stock": 30},
            {"sku": "TEE-M", "options": {"size": "M"}, "stock": 40},
            {"sku": "TEE-L", "options": {"size": "L"}, "stock": 25},
        ],
    },
    {"name": "Son môi lì", "category": "beauty", "base_price": 249_000, "stock": 50},
    {"name": "Tai nghe không dây", "category": "electronics", "base_price": 590_000, "stock": 15},
)


async def create_demo(settings: Settings, *, reset: bool = False) -> None:
    """Create what is missing; with `reset`, give existing demo accounts new passwords."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    backends = Backends(backend_urls(settings))
    await backends.start()
    try:
        lines, seller = await _accounts(settings, backends, reset=reset)
        shop_line = "  (demo shop already created)"
        if seller is not None:
            shop_line = await _shop(settings, backends, seller)
    finally:
        await backends.close()
    base = settings.effective_public_url
    print("Demo accounts (log in with POST /api/auth/login):")
    print("\n".join(lines))
    print(shop_line)
    print(f"API docs:    {base}/swagger")
    print(f"OBS Server:  {settings.rtmp_url or RTMP_PORT_CHOSEN_AT_START}")
    print(f"OBS WHIP:    {base}{WHIP_PATH}  (Bearer Token: the stream key)")


async def _accounts(
    settings: Settings, backends: Backends, *, reset: bool
) -> tuple[list[str], User | None]:
    """Create the accounts that do not exist yet (and, with `reset`, give the others new
    passwords); returns lines to print and a new seller."""
    accounts = build_accounts(settings, backends)
    lines, new_seller = [], None
    for email, name, role in DEMO_ACCOUNTS:
        async with backends.sessions() as session:
            exists = await session.scalar(select(User.id).where(User.email == email))
        if exists and not reset:
            lines.append(
                f"  {role.value:<9} {email}  (already created; `streamcart demo --reset` "
                "prints a new password)"
            )
            continue
        password = secrets.token_urlsafe(12)
        if exists:
            await accounts.set_password(exists, password)
            lines.append(f"  {role.value:<9} {email}  password: {password}  (reset)")
            continue
        user = await accounts.create_user(email, password, name, role)
        lines.append(f"  {role.value:<9} {email}  password: {password}")
        if email == SELLER:
            new_seller = user
    return lines, new_seller


async def _shop(settings: Settings, backends: Backends, seller: User) -> str:
    acting = Principal(seller.id, seller.role, "demo", datetime.now(UTC))
    shop = await ShopService(backends.sessions, approval_required=False).create(
        acting, "Demo Live Shop", "Products to try the live shopping flow with."
    )
    catalog = CatalogService(backends.sessions)
    for product in DEMO_PRODUCTS:
        await catalog.create(acting, ProductIn.model_validate({"shop_id": shop.id, **product}))
    return f"Demo shop:   {shop.name} ({shop.id}) with {len(DEMO_PRODUCTS)} products"
