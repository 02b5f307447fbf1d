"""Documents in MongoDB through PyMongo's asyncio client (Motor is end-of-life).

Our "id" is MongoDB's `_id`. Each document also carries `_created`, the insert
time in microseconds, hidden from readers: it gives `find` without `sort` the
same insertion order as the SQL adapter's `created_at` (ObjectIds would not,
since callers may choose their own ids). The query translation is a pure
function, `find_query`, so it is tested without a server.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from storage.documents.port import Document, DuplicateDocument
from storage.documents.rules import (
    INDEXED_FIELDS,
    MAX_LIMIT,
    Scalar,
    check_after_id,
    check_collection,
    check_sort,
    check_where,
    clamp_limit,
    prepare_bulk_changes,
    prepare_changes,
    prepare_insert,
)

CREATED = "_created"
HIDDEN = {CREATED: False}  # projection applied to every read
SERVER_SELECTION_MS = 3000
DUPLICATE_KEY = 11000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FindQuery:
    filter: dict[str, Any]
    sort: list[tuple[str, int]]
    limit: int


def find_query(
    where: Mapping[str, Any] | None,
    sort: str | None,
    descending: bool,
    limit: int,
    after_id: str | None = None,
) -> FindQuery:
    """Translate the port's `find` arguments (validated like the SQL adapter's)."""
    order = DESCENDING if descending else ASCENDING
    sort = check_sort(sort)
    after_id = check_after_id(sort, after_id)
    if sort == "id":
        keys = [("_id", order)]
    else:
        keys = [(CREATED if sort is None else sort, order), ("_id", order)]
    query = mongo_filter(check_where(where))
    if after_id is not None:
        past = {"$lt" if descending else "$gt": after_id}
        query["_id"] = {"$eq": query["_id"], **past} if "_id" in query else past
    return FindQuery(query, keys, clamp_limit(limit))


def mongo_filter(where: dict[str, Scalar]) -> dict[str, Any]:
    """Equality as the SQL adapter has it: a value never matches inside an array.

    MongoDB's plain `{field: value}` also matches arrays holding the value; `$type`
    "array" excludes them without giving up an index on the field.
    """
    query: dict[str, Any] = {}
    for field, value in where.items():
        if field == "id":
            query["_id"] = value
        else:
            query[field] = {"$eq": value, "$not": {"$type": "array"}}
    return query


def microseconds(moment: datetime) -> int:
    """A time as `_created` holds it (in integers: a float loses the last digit)."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def to_mongo(doc_id: str, fields: dict[str, Any], created_us: int) -> dict[str, Any]:
    return {"_id": doc_id, CREATED: created_us, **fields}


def from_mongo(raw: dict[str, Any]) -> Document:
    """A stored document as readers see it (read with the `HIDDEN` projection)."""
    fields = dict(raw)
    return {"id": fields.pop("_id"), **fields}


class MongoDocuments:
    """`DocumentStore` on MongoDB; connects lazily, so building it does no I/O."""

    def __init__(self, url: str, database: str = "streamcart") -> None:
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=SERVER_SELECTION_MS
        )
        self._database = self._client[database]
        self._indexed: set[str] = set()

    def _collection(self, name: str) -> AsyncCollection[dict[str, Any]]:
        return self._database[check_collection(name)]

    async def _index(self, name: str, target: AsyncCollection[dict[str, Any]]) -> None:
        """The insertion order and `INDEXED_FIELDS`, as the SQL table has them; built
        before this process first writes or filters the collection."""
        if name not in self._indexed:  # idempotent, so a race only repeats it
            await target.create_index([(CREATED, ASCENDING), ("_id", ASCENDING)])
            for field in INDEXED_FIELDS:
                await target.create_index([(field, ASCENDING)])
            self._indexed.add(name)

    async def prepare(self, collection: str) -> None:
        await self._index(collection, self._collection(collection))

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> str:
        target = self._collection(collection)
        doc_id, fields = prepare_insert(doc)
        await self._index(collection, target)
        try:
            await target.insert_one(to_mongo(doc_id, fields, time.time_ns() // 1000))
        except DuplicateKeyError as exc:
            raise DuplicateDocument(collection, doc_id) from exc
        return doc_id

    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        target = self._collection(collection)
        prepared = [prepare_insert(doc) for doc in docs]
        if not prepared:
            return []
        await self._index(collection, target)
        created = time.time_ns() // 1000
        try:  # unordered: a duplicate stops nothing else
            await target.insert_many(
                [to_mongo(doc_id, fields, created) for doc_id, fields in prepared], ordered=False
            )
        except BulkWriteError as exc:
            if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                raise
            skipped = {e["index"] for e in exc.details["writeErrors"]}
            return [doc_id for i, (doc_id, _) in enumerate(prepared) if i not in skipped]
        return [doc_id for doc_id, _ in prepared]

    async def get(self, collection: str, doc_id: str) -> Document | None:
        raw = await self._collection(collection).find_one({"_id": doc_id}, HIDDEN)
        return None if raw is None else from_mongo(raw)

    async def find(
        self,
        collection: str,
        where: Mapping[str, Any] | None = None,
        *,
        sort: str | None = None,
        descending: bool = False,
        limit: int = 100,
        after_id: str | None = None,
    ) -> list[Document]:
        target = self._collection(collection)
        query = find_query(where, sort, descending, limit, after_id)
        await self._index(collection, target)
        cursor = target.find(query.filter, HIDDEN).sort(query.sort).limit(query.limit)
        return [from_mongo(raw) for raw in await cursor.to_list()]

    async def update(self, collection: str, doc_id: str, changes: Mapping[str, Any]) -> bool:
        target = self._collection(collection)
        fields = prepare_changes(doc_id, changes)
        if not fields:  # MongoDB refuses an empty $set
            return await target.count_documents({"_id": doc_id}, limit=1) > 0
        result = await target.update_one({"_id": doc_id}, {"$set": fields})
        return result.matched_count > 0

    async def update_many(
        self, collection: str, where: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> int:
        target = self._collection(collection)
        query, fields = mongo_filter(check_where(where)), prepare_bulk_changes(changes)
        await self._index(collection, target)
        if not fields:  # MongoDB refuses an empty $set
            return await target.count_documents(query)
        result = await target.update_many(query, {"$set": fields})
        return result.matched_count

    async def delete(self, collection: str, doc_id: str) -> bool:
        result = await self._collection(collection).delete_one({"_id": doc_id})
        return result.deleted_count > 0

    async def delete_many(
        self,
        collection: str,
        where: Mapping[str, Any] | None = None,
        *,
        stored_before: datetime | None = None,
        limit: int = MAX_LIMIT,
    ) -> int:
        """The oldest `limit` ids first, then those: MongoDB's delete_many has no limit."""
        target = self._collection(collection)
        query, limit = mongo_filter(check_where(where)), clamp_limit(limit)
        if stored_before is not None:
            query[CREATED] = {"$lt": microseconds(stored_before)}
        await self._index(collection, target)
        oldest = target.find(query, {"_id": True}).sort([(CREATED, ASCENDING), ("_id", ASCENDING)])
        doomed = [raw["_id"] for raw in await oldest.limit(limit).to_list()]
        if not doomed:
            return 0
        result = await target.delete_many({"_id": {"$in": doomed}})
        return result.deleted_count

    async def count(self, collection: str, where: Mapping[str, Any] | None = None) -> int:
        target = self._collection(collection)
        query = mongo_filter(check_where(where))
        await self._index(collection, target)
        return await target.count_documents(query)

    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def close(self) -> None:
        await self._client.close()
