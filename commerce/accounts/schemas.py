"""Request and response bodies of the auth API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from storage.web import Input

Password = Annotated[str, Field(min_length=8, max_length=128)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
OpaqueToken = Annotated[str, Field(min_length=16, max_length=256)]


class RegisterIn(Input):
    email: EmailStr = Field(max_length=254)
    password: Password
    display_name: DisplayName
    role: Literal["buyer", "seller"] = "buyer"


class LoginIn(Input):
    email: EmailStr = Field(max_length=254)
    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshIn(Input):
    refresh_token: OpaqueToken


class LogoutIn(Input):
    refresh_token: OpaqueToken | None = None


class UserOut(BaseModel):
    id: str
    email: str
    display_name: str
    role: str
    is_active: bool
    created_at: datetime


class TokensOut(BaseModel):
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name)
    access_token: str
    expires_at: datetime = Field(description="When the access token expires.")
    refresh_token: str
    refresh_expires_at: datetime
    user: UserOut
