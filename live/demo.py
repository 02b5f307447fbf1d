"""`streamcart demo`: demo accounts to try the API with, printed with their logins."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from commerce.accounts.models import Role, User
from live.app import backend_urls, build_accounts
from live.settings import Settings
from storage.backends import Backends

DEMO_ACCOUNTS = (
    ("seller@demo.streamcart.local", "Demo Shop Owner", Role.SELLER),
    ("buyer@demo.streamcart.local", "Demo Buyer", Role.BUYER),
    ("admin@demo.streamcart.local", "Demo Admin", Role.ADMIN),
)


async def create_demo(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    backends = Backends(backend_urls(settings))
    await backends.start()
    try:
        accounts = build_accounts(settings, backends)
        lines = []
        for email, name, role in DEMO_ACCOUNTS:
            async with backends.sessions() as session:
                exists = await session.scalar(select(User.id).where(User.email == email))
            if exists:
                lines.append(f"  {role.value:<9} {email}  (already created; password unchanged)")
                continue
            password = secrets.token_urlsafe(12)
            await accounts.create_user(email, password, name, role)
            lines.append(f"  {role.value:<9} {email}  password: {password}")
    finally:
        await backends.close()
    base = settings.effective_public_url
    print("Demo accounts (log in with POST /api/auth/login):")
    print("\n".join(lines))
    print(f"API docs:    {base}/swagger")
    print(f"OBS Server:  rtmp://{_host(base)}:{settings.rtmp_port}/live")


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
