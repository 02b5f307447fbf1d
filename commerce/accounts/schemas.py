"""Request and response bodies of the auth API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field, HttpUrl, StringConstraints, field_validator

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
    email_verified: bool = False
    avatar_url: str | None = None
    language: str | None = None


class TokensOut(BaseModel):
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name)
    access_token: str
    expires_at: datetime = Field(description="When the access token expires.")
    refresh_token: str
    refresh_expires_at: datetime
    user: UserOut


Language = Literal["vi", "en", "fr", "de", "es", "ja", "ko", "zh", "th", "id"]
Text100 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Optional100 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Optional200 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9 ().-]{6,19}$")]
PostalCode = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)]
Country = Annotated[str, Field(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")]


class ProfileIn(Input):
    """Fields left out stay as they are; `null` clears the avatar or the language."""

    display_name: DisplayName | None = None
    avatar_url: HttpUrl | None = Field(
        default=None, max_length=2048, description="An `https://` image URL."
    )
    language: Language | None = Field(default=None, description="A BCP 47 language tag.")

    @field_validator("avatar_url")
    @classmethod
    def _https_only(cls, url: HttpUrl | None) -> HttpUrl | None:
        if url is not None and url.scheme != "https":
            raise ValueError("the avatar URL must be https")
        return url


class PasswordChangeIn(Input):
    current_password: Annotated[str, Field(min_length=1, max_length=128)]
    new_password: Password


class ResetRequestIn(Input):
    email: EmailStr = Field(max_length=254)


class ResetConfirmIn(Input):
    token: OpaqueToken
    new_password: Password


class CodeIn(Input):
    code: Annotated[str, Field(pattern=r"^[0-9]{6}$")]


class AcceptedOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str


class AddressIn(Input):
    recipient: Text100
    phone: Phone
    line1: Text200
    line2: Optional200 = ""
    city: Text100
    region: Optional100 = ""
    postal_code: PostalCode = ""
    country: Country = "VN"
    is_default: bool = False


class AddressPatchIn(Input):
    """Fields left out stay as they are; `is_default: true` makes this the default."""

    recipient: Text100 | None = None
    phone: Phone | None = None
    line1: Text200 | None = None
    line2: Optional200 | None = None
    city: Text100 | None = None
    region: Optional100 | None = None
    postal_code: PostalCode | None = None
    country: Country | None = None
    is_default: Literal[True] | None = None


class AddressOut(BaseModel):
    id: str
    recipient: str
    phone: str
    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country: str
    is_default: bool
    created_at: datetime


class AddressList(BaseModel):
    items: list[AddressOut]
