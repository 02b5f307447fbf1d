"""Request and response bodies of the catalog API."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from commerce.shops.schemas import Id
from storage.web import Input
from storage.web.pagination import Page, PageQuery


def _web_url(url: str) -> str:
    """Only http(s) URLs with a host: javascript:, data: and friends never reach a page."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an http or https URL")
    return url


def _text(min_length: int, max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


ProductName = Annotated[str, _text(1, 200)]
Description = Annotated[str, _text(0, 5000)]
Category = Annotated[str, _text(0, 80)]
Sku = Annotated[str, _text(1, 64)]
OptionText = Annotated[str, _text(1, 40)]
ImageUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_web_url)]
Images = Annotated[list[ImageUrl], Field(max_length=10)]
Price = Annotated[int, Field(ge=0, le=10**12, description="Integer VND.")]
Stock = Annotated[int, Field(ge=0, le=10**9, description="Units on hand.")]
Options = Annotated[
    dict[OptionText, OptionText],
    Field(max_length=5, description='Option values, e.g. {"size": "M", "colour": "đỏ"}.'),
]


def _reject_null(value: object) -> object:
    if value is None:
        raise ValueError("may be left out but not null")
    return value


def _reject_duplicates(keys: Iterable[Hashable | None], what: str) -> None:
    seen: set[Hashable] = set()
    for key in keys:
        if key is not None and key in seen:
            raise ValueError(f"two variants have the same {what}")
        if key is not None:
            seen.add(key)


class VariantIn(Input):
    sku: Sku | None = None
    options: Options = Field(default_factory=dict)
    price: Price | None = Field(None, description="Null: the product's base price.")
    stock: Stock


# `_stock_or_variants` in JSON Schema: exactly one of the two is given (and not null).
STOCK_OR_VARIANTS = {
    "oneOf": [
        {"required": ["stock"], "properties": {"stock": {"type": "integer"}}},
        {"required": ["variants"], "properties": {"variants": {"type": "array"}}},
    ]
}


class ProductIn(Input):
    """Give `stock` for a product without variants, or `variants`: one, not both."""

    model_config = ConfigDict(json_schema_extra=STOCK_OR_VARIANTS)

    shop_id: Id
    name: ProductName
    description: Description = ""
    images: Images = Field(default_factory=list)
    category: Category = ""
    base_price: Price
    stock: Stock | None = Field(None, description="For a product without variants.")
    variants: Annotated[list[VariantIn], Field(min_length=1, max_length=100)] | None = None

    @field_validator("variants")
    @classmethod
    def _distinct_variants(cls, variants: list[VariantIn] | None) -> list[VariantIn] | None:
        if variants is not None:
            _reject_duplicates((_option_key(v.options) for v in variants), "options")
            _reject_duplicates((v.sku.casefold() if v.sku else None for v in variants), "sku")
        return variants

    @model_validator(mode="after")
    def _stock_or_variants(self) -> ProductIn:
        if (self.stock is None) == (self.variants is None):
            raise ValueError("give either stock (no variants) or variants, not both or neither")
        return self


def _option_key(options: dict[str, str]) -> frozenset[tuple[str, str]]:
    """Options compare without case: "M"/"m" or "Size"/"size" would confuse buyers."""
    return frozenset((k.casefold(), v.casefold()) for k, v in options.items())


class VariantPatch(Input):
    id: Id
    sku: Sku | None = Field(None, description="Null clears the SKU.")
    price: Price | None = Field(None, description="Null: use the product's base price.")
    stock: Stock | None = Field(
        None, description="Sets units on hand; 409 if below the units reserved by orders."
    )

    _stock_not_null = field_validator("stock")(_reject_null)


class ProductPatch(Input):
    """Fields left out stay as they are."""

    name: ProductName | None = None
    description: Description | None = None
    images: Images | None = None
    category: Category | None = None
    base_price: Price | None = None
    status: Literal["active", "archived"] | None = None
    variants: Annotated[list[VariantPatch], Field(max_length=100)] | None = None

    _not_null = field_validator(
        "name", "description", "images", "category", "base_price", "status", "variants"
    )(_reject_null)

    @field_validator("variants")
    @classmethod
    def _distinct_ids(cls, variants: list[VariantPatch]) -> list[VariantPatch]:
        _reject_duplicates((v.id for v in variants), "id")
        return variants


class ProductQuery(PageQuery):
    q: str | None = Field(
        None, max_length=200, description="Words that must all appear; diacritics optional."
    )
    shop_id: Id | None = None
    category: str | None = Field(None, max_length=80, description="Exact category.")
    include_archived: bool = Field(
        False, description="Also archived products; needs shop_id and access to that shop."
    )

    @model_validator(mode="after")
    def _archived_of_one_shop(self) -> ProductQuery:
        if self.include_archived and self.shop_id is None:
            raise ValueError("include_archived needs shop_id")
        return self


class VariantOut(BaseModel):
    id: str
    sku: str | None
    options: dict[str, str]
    price: int = Field(description="The variant's own price, else the product's base price.")
    stock: int = Field(description="Units on hand.")
    available: int = Field(description="Units on hand not reserved by orders.")
    is_default: bool = Field(description="The single unit of a product without variants.")
    archived: bool


class ProductOut(BaseModel):
    id: str
    shop_id: str
    name: str
    description: str
    images: list[str]
    category: str
    base_price: int
    status: str
    created_at: datetime
    updated_at: datetime
    variants: list[VariantOut]


class ProductPage(Page[ProductOut]):
    pass
