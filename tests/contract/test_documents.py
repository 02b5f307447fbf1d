"""One contract for every document store: SQLite, PostgreSQL and (when given) MongoDB.

The Mongo query translation is also checked offline, so its mapping is covered
on machines without a MongoDB server.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

from storage.documents import (
    DocumentStore,
    DuplicateDocument,
    MongoDocuments,
    SqlDocuments,
    make_documents,
)
from storage.documents.mongo import CREATED, find_query, from_mongo, microseconds, to_mongo
from storage.documents.rules import MAX_LIMIT
from storage.sql import session_factory
from tests.backends import require_mongo

SHIRT = "Áo thun cổ tròn"


@pytest.fixture(params=["sql-sqlite", "sql-postgresql", "mongo"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def sql_url(backend, tmp_path, request) -> str:
    """Overrides conftest's parametrized `sql_url`: here `backend` picks the database."""
    if backend == "sql-sqlite":
        return f"sqlite:///{tmp_path / 'documents.sqlite3'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
async def mongo_store():
    url = require_mongo()
    database = f"streamcart_test_{uuid.uuid4().hex[:12]}"
    store = MongoDocuments(url, database)
    yield store
    await store.close()
    admin = AsyncMongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        await admin.drop_database(database)
    finally:
        await admin.close()


@pytest.fixture
def store(backend, request) -> DocumentStore:
    if backend == "mongo":
        return request.getfixturevalue("mongo_store")
    return SqlDocuments(session_factory(request.getfixturevalue("sql_engine")))


async def insert_all(store: DocumentStore, collection: str, *docs: dict) -> list[str]:
    return [await store.insert(collection, doc) for doc in docs]


def ids(docs: list[dict]) -> list[str]:
    return [doc["id"] for doc in docs]


# --- insert and get ---------------------------------------------------------------


async def test_insert_get_round_trips_nested_values(store):
    doc = {
        "room": "live-1",
        "author": {"id": "u1", "name": "Lan", "badges": ["seller", "vip"]},
        "items": [{"sku": "A1", "qty": 2, "price": 150000}, {"sku": "B2", "qty": 1}],
        "ratio": 0.25,
        "pinned": False,
        "reply_to": None,
        "empty": {"list": [], "dict": {}},
    }
    doc_id = await store.insert("chat", doc)
    assert await store.get("chat", doc_id) == {"id": doc_id, **doc}
    assert "id" not in doc  # the caller's dict is left alone


async def test_generated_ids_are_unique_strings_and_given_ids_are_kept(store):
    generated = await insert_all(store, "chat", *({"n": n} for n in range(20)))
    assert len(set(generated)) == 20
    assert all(isinstance(doc_id, str) and doc_id for doc_id in generated)

    assert await store.insert("chat", {"id": "order-42", "n": 99}) == "order-42"
    assert await store.get("chat", "order-42") == {"id": "order-42", "n": 99}


async def test_missing_document_is_none(store):
    assert await store.get("chat", "nope") is None


async def test_duplicate_id_raises_and_keeps_the_first(store):
    await store.insert("chat", {"id": "m1", "text": "first"})
    with pytest.raises(DuplicateDocument) as caught:
        await store.insert("chat", {"id": "m1", "text": "second"})
    assert (caught.value.collection, caught.value.doc_id) == ("chat", "m1")
    assert await store.get("chat", "m1") == {"id": "m1", "text": "first"}


async def test_collections_are_isolated(store):
    await store.insert("chat", {"id": "same", "kind": "chat"})
    await store.insert("notifications", {"id": "same", "kind": "notification"})
    assert await store.get("notifications", "same") == {"id": "same", "kind": "notification"}
    assert ids(await store.find("chat")) == ["same"]
    assert await store.count("analytics") == 0

    assert await store.delete("chat", "same")
    assert await store.get("notifications", "same") is not None


async def test_unicode_round_trips_and_filters(store):
    doc_id = await store.insert("catalog", {"name": SHIRT, "tags": ["mùa hè", "cotton"]})
    assert await store.get("catalog", doc_id) == {
        "id": doc_id,
        "name": SHIRT,
        "tags": ["mùa hè", "cotton"],
    }
    assert ids(await store.find("catalog", {"name": SHIRT})) == [doc_id]
    assert await store.find("catalog", {"name": "Áo thun"}) == []


async def test_fifty_concurrent_inserts_are_all_stored(store):
    inserted = await asyncio.gather(*(store.insert("chat", {"n": n}) for n in range(50)))
    assert len(set(inserted)) == 50
    assert await store.count("chat") == 50
    assert sorted(doc["n"] for doc in await store.find("chat", limit=100)) == list(range(50))


async def test_insert_many_stores_all_and_skips_ids_already_there(store):
    first = await store.insert("inbox", {"id": "a", "n": 0})
    stored = await store.insert_many("inbox", [{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"n": 3}])
    assert first == "a" and len(stored) == 2 and stored[0] == "b"
    assert (await store.get("inbox", "a"))["n"] == 0  # the first one is kept
    assert (await store.get("inbox", stored[1]))["n"] == 3
    assert await store.count("inbox") == 3
    assert await store.insert_many("inbox", []) == []
    with pytest.raises(TypeError):
        await store.insert_many("inbox", [{"when": datetime.now(UTC)}])


# --- find -------------------------------------------------------------------------


@pytest.fixture
async def messages(store) -> DocumentStore:
    await insert_all(
        store,
        "chat",
        {"id": "m1", "room": "r1", "user": "lan", "likes": 3, "pinned": True, "reply_to": None},
        {"id": "m2", "room": "r1", "user": "minh", "likes": 0, "pinned": False},
        {"id": "m3", "room": "r2", "user": "lan", "likes": 3, "pinned": False, "reply_to": "m1"},
        {"id": "m4", "room": "r1", "user": "lan", "likes": 10, "pinned": False},
    )
    return store


async def test_find_by_one_and_by_two_fields(messages):
    assert ids(await messages.find("chat", {"room": "r1"})) == ["m1", "m2", "m4"]
    assert ids(await messages.find("chat", {"room": "r1", "user": "lan"})) == ["m1", "m4"]


async def test_find_by_int_bool_and_none(messages):
    assert ids(await messages.find("chat", {"likes": 3})) == ["m1", "m3"]
    assert ids(await messages.find("chat", {"pinned": True})) == ["m1"]
    assert ids(await messages.find("chat", {"pinned": False, "likes": 0})) == ["m2"]
    # None matches an explicit null and a missing field alike.
    assert ids(await messages.find("chat", {"reply_to": None})) == ["m1", "m2", "m4"]


async def test_find_by_id(messages):
    assert ids(await messages.find("chat", {"id": "m3"})) == ["m3"]
    assert await messages.find("chat", {"id": "m3", "room": "r1"}) == []


async def test_find_without_match_is_empty(messages):
    assert await messages.find("chat", {"room": "r9"}) == []
    assert await messages.find("chat", {"user": "lan", "likes": 0}) == []
    assert await messages.find("nothing-here") == []


async def test_equality_is_type_strict(store):
    await insert_all(
        store,
        "values",
        {"id": "int", "v": 1},
        {"id": "float", "v": 1.0},
        {"id": "text", "v": "1"},
        {"id": "bool", "v": True},
        {"id": "list", "v": [1, "1", True]},
        {"id": "object", "v": {"v": 1}},
        {"id": "null", "v": None},
    )
    assert ids(await store.find("values", {"v": 1}, sort="id")) == ["float", "int"]
    assert ids(await store.find("values", {"v": "1"})) == ["text"]
    assert ids(await store.find("values", {"v": True})) == ["bool"]
    assert ids(await store.find("values", {"v": None})) == ["null"]
    assert await store.find("values", {"v": 0}) == []
    assert await store.find("values", {"v": False}) == []
    # Sorting a field of mixed types has a backend-defined order, but never fails.
    assert len(await store.find("values", sort="v", descending=True)) == 7


async def test_sort_by_a_number_field_ascending_and_descending(messages):
    # 10 after 3: numbers compare as numbers, not as text; ties go to the id.
    assert ids(await messages.find("chat", sort="likes")) == ["m2", "m1", "m3", "m4"]
    assert ids(await messages.find("chat", sort="likes", descending=True)) == [
        "m4",
        "m3",
        "m1",
        "m2",
    ]


async def test_sort_puts_missing_fields_first_ascending_and_last_descending(messages):
    assert ids(await messages.find("chat", sort="reply_to")) == ["m1", "m2", "m4", "m3"]
    assert ids(await messages.find("chat", sort="reply_to", descending=True)) == [
        "m3",
        "m4",
        "m2",
        "m1",
    ]


async def test_sort_strings_by_code_point(store):
    names = {"lower": "a", "upper": "B", "accented": "Á", "digit": "9", "long": "aa"}
    for doc_id, name in names.items():
        await store.insert("people", {"id": doc_id, "name": name})
    expected = ["digit", "upper", "lower", "long", "accented"]
    assert ids(await store.find("people", sort="name")) == expected
    assert ids(await store.find("people", sort="name", descending=True)) == expected[::-1]


async def test_sort_by_id(store):
    await insert_all(store, "chat", {"id": "b"}, {"id": "c"}, {"id": "a"})
    assert ids(await store.find("chat", sort="id")) == ["a", "b", "c"]
    assert ids(await store.find("chat", sort="id", descending=True)) == ["c", "b", "a"]


async def test_after_id_continues_a_page_by_id_in_either_direction(store):
    await insert_all(store, "chat", *({"id": f"m{n}", "room": "r1"} for n in range(1, 6)))
    await store.insert("chat", {"id": "m0", "room": "r2"})
    newest = await store.find("chat", {"room": "r1"}, sort="id", descending=True, after_id="m4")
    assert ids(newest) == ["m3", "m2", "m1"]
    oldest = await store.find("chat", {"room": "r1"}, sort="id", after_id="m2", limit=2)
    assert ids(oldest) == ["m3", "m4"]
    assert await store.find("chat", {"id": "m3"}, sort="id", after_id="m3") == []
    with pytest.raises(ValueError, match="after_id"):
        await store.find("chat", sort="room", after_id="m1")


async def test_default_order_is_insertion_order(store):
    await insert_all(store, "chat", {"id": "c"}, {"id": "a"}, {"id": "b"})
    assert ids(await store.find("chat")) == ["c", "a", "b"]
    assert ids(await store.find("chat", descending=True)) == ["b", "a", "c"]


async def test_limit_keeps_the_first_documents_in_order(messages):
    assert ids(await messages.find("chat", limit=2)) == ["m1", "m2"]
    assert ids(await messages.find("chat", sort="likes", descending=True, limit=1)) == ["m4"]
    assert len(await messages.find("chat", limit=MAX_LIMIT * 10)) == 4
    with pytest.raises(ValueError, match="limit"):
        await messages.find("chat", limit=0)


async def test_count_with_and_without_filter(messages):
    assert await messages.count("chat") == 4
    assert await messages.count("chat", {"user": "lan"}) == 3
    assert await messages.count("chat", {"user": "lan", "pinned": False}) == 2
    assert await messages.count("chat", {"user": "nobody"}) == 0


@pytest.mark.parametrize(
    "where",
    [
        {"author": {"id": "u1"}},
        {"tags": ["a"]},
        {"ratio": 0.5},
        {"at": datetime.now(UTC)},
        {"n": 2**63},
        {"author.id": "u1"},
        {"$where": "1"},
        {"_id": "m1"},
        {"id": 5},
    ],
)
async def test_unsupported_filters_are_rejected(messages, where):
    with pytest.raises(ValueError):
        await messages.find("chat", where)
    with pytest.raises(ValueError):
        await messages.count("chat", where)


async def test_bad_sort_field_and_collection_are_rejected(store):
    with pytest.raises(ValueError, match="field"):
        await store.find("chat", sort="author.name")
    with pytest.raises(ValueError, match="collection"):
        await store.insert("system.users", {})
    with pytest.raises(ValueError, match="collection"):
        await store.count("")


# --- update and delete ------------------------------------------------------------


async def test_update_merges_top_level_fields(messages):
    assert await messages.update("chat", "m1", {"likes": 4, "edited": True, "reply_to": "m2"})
    assert await messages.get("chat", "m1") == {
        "id": "m1",
        "room": "r1",
        "user": "lan",
        "likes": 4,
        "pinned": True,
        "reply_to": "m2",
        "edited": True,
    }
    assert ids(await messages.find("chat", {"likes": 4})) == ["m1"]


async def test_update_replaces_nested_values_whole(store):
    await store.insert("profiles", {"id": "p", "prefs": {"lang": "vi", "dark": True}})
    assert await store.update("profiles", "p", {"prefs": {"lang": "en"}})
    assert await store.get("profiles", "p") == {"id": "p", "prefs": {"lang": "en"}}


async def test_update_of_a_missing_document_is_false(messages):
    assert await messages.update("chat", "nope", {"likes": 1}) is False
    assert await messages.update("notifications", "m1", {"likes": 1}) is False
    assert await messages.get("chat", "nope") is None
    assert await messages.update("chat", "nope", {}) is False
    assert await messages.update("chat", "m2", {}) is True


async def test_update_cannot_change_the_id(messages):
    with pytest.raises(ValueError, match="id"):
        await messages.update("chat", "m1", {"id": "m9", "likes": 5})
    assert await messages.get("chat", "m9") is None
    assert (await messages.get("chat", "m1"))["likes"] == 3
    # Repeating the same id is harmless: a fetched document can be written back.
    assert await messages.update("chat", "m1", {"id": "m1", "likes": 5})
    assert (await messages.get("chat", "m1"))["likes"] == 5


async def test_delete_is_true_once(messages):
    assert await messages.delete("chat", "m2") is True
    assert await messages.delete("chat", "m2") is False
    assert await messages.get("chat", "m2") is None
    assert await messages.count("chat") == 3


async def test_update_many_sets_fields_on_every_match_and_counts_them(messages):
    changed = await messages.update_many("chat", {"user": "lan"}, {"seen": True, "reply_to": None})
    assert changed == 3
    assert ids(await messages.find("chat", {"seen": True})) == ["m1", "m3", "m4"]
    assert await messages.get("chat", "m3") == {
        "id": "m3",
        "room": "r2",
        "user": "lan",
        "likes": 3,
        "pinned": False,
        "reply_to": None,  # set to null, not removed
        "seen": True,
    }
    assert await messages.get("chat", "m2") == {
        "id": "m2",
        "room": "r1",
        "user": "minh",
        "likes": 0,
        "pinned": False,
    }
    assert await messages.update_many("chat", {"user": "lan"}, {}) == 3
    assert await messages.update_many("chat", {"user": "nobody"}, {"seen": False}) == 0
    assert await messages.update_many("notifications", {}, {"seen": False}) == 0


async def test_update_many_keeps_values_whole_and_rejects_ids_and_bad_values(messages):
    nested = {"by": {"id": "u1", "tags": ["a", 1, 0.5, None]}, "n": 2**62}
    assert await messages.update_many("chat", {"room": "r1"}, nested) == 3
    assert {k: (await messages.get("chat", "m4"))[k] for k in nested} == nested
    assert ids(await messages.find("chat", {"n": 2**62})) == ["m1", "m2", "m4"]
    with pytest.raises(ValueError, match="id"):
        await messages.update_many("chat", {}, {"id": "m9"})
    with pytest.raises(TypeError):
        await messages.update_many("chat", {}, {"at": datetime.now(UTC)})
    with pytest.raises(ValueError):
        await messages.update_many("chat", {"by.id": "u1"}, {"seen": True})


async def test_update_many_marks_five_thousand_in_one_call(store):
    docs = [{"user_id": "u1" if n % 5 else "u2", "read_at": None} for n in range(6250)]
    for start in range(0, len(docs), MAX_LIMIT):
        await store.insert_many("inbox", docs[start : start + MAX_LIMIT])
    unread = {"user_id": "u1", "read_at": None}
    assert await store.update_many("inbox", unread, {"read_at": "2026-12-04"}) == 5000
    assert await store.count("inbox", {"user_id": "u1", "read_at": None}) == 0
    assert await store.count("inbox", {"user_id": "u2", "read_at": None}) == 1250


async def test_delete_many_deletes_matches_oldest_first_up_to_the_limit(messages):
    assert await messages.delete_many("chat", {"user": "lan"}, limit=2) == 2
    assert ids(await messages.find("chat")) == ["m2", "m4"]
    assert await messages.delete_many("chat", {"user": "nobody"}) == 0
    assert await messages.delete_many("chat") == 2
    assert await messages.count("chat") == 0
    with pytest.raises(ValueError, match="limit"):
        await messages.delete_many("chat", limit=0)


async def test_delete_many_stored_before_keeps_the_newer(store):
    await insert_all(store, "inbox", {"id": "old1", "u": "a"}, {"id": "old2", "u": "b"})
    cutoff = datetime.now(UTC)
    await insert_all(store, "inbox", {"id": "new", "u": "a"})
    await store.insert("other", {"id": "elsewhere"})
    assert await store.delete_many("inbox", {"u": "a"}, stored_before=cutoff) == 1
    assert await store.delete_many("inbox", stored_before=cutoff) == 1
    assert await store.delete_many("inbox", stored_before=cutoff) == 0
    assert ids(await store.find("inbox")) == ["new"]
    assert await store.get("other", "elsewhere") is not None


async def test_prepare_is_idempotent_and_checks_the_name(store):
    await store.prepare("notifications")
    await store.prepare("notifications")
    with pytest.raises(ValueError, match="collection"):
        await store.prepare("system.users")


# --- values outside JSON ----------------------------------------------------------


async def test_datetimes_are_rejected_clearly_and_nothing_is_stored(store):
    now = datetime.now(UTC)
    with pytest.raises(TypeError, match=r"sent_at: datetime .*ISO 8601"):
        await store.insert("chat", {"sent_at": now})
    with pytest.raises(TypeError, match=r"events\[1\]\.at: datetime"):
        await store.insert("chat", {"events": [{}, {"at": now}]})
    assert await store.count("chat") == 0

    doc_id = await store.insert("chat", {"sent_at": now.isoformat()})
    with pytest.raises(TypeError, match="edited_at: datetime"):
        await store.update("chat", doc_id, {"edited_at": now})
    assert await store.get("chat", doc_id) == {"id": doc_id, "sent_at": now.isoformat()}


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({"n": float("nan")}, TypeError),
        ({"n": 2**64}, TypeError),
        ({"tags": {"a", "b"}}, TypeError),
        ({"map": {1: "one"}}, TypeError),
        ({"_created": 1}, ValueError),
        ({"id": 42}, ValueError),
        ({"id": "x" * 65}, ValueError),
    ],
)
async def test_values_outside_the_contract_are_rejected(store, doc, error):
    with pytest.raises(error):
        await store.insert("chat", doc)
    assert await store.count("chat") == 0


async def test_ping_and_close(store):
    await store.ping()
    await store.close()


# --- offline: MongoDB mapping and adapter choice ----------------------------------


def test_mongo_query_maps_id_filters_and_keeps_arrays_out():
    query = find_query({"id": "m1", "room": "r1", "reply_to": None}, None, False, 50)
    assert query.filter == {
        "_id": "m1",
        "room": {"$eq": "r1", "$not": {"$type": "array"}},
        "reply_to": {"$eq": None, "$not": {"$type": "array"}},
    }
    assert query.limit == 50


@pytest.mark.parametrize(
    ("sort", "descending", "expected"),
    [
        (None, False, [(CREATED, ASCENDING), ("_id", ASCENDING)]),
        (None, True, [(CREATED, DESCENDING), ("_id", DESCENDING)]),
        ("likes", False, [("likes", ASCENDING), ("_id", ASCENDING)]),
        ("likes", True, [("likes", DESCENDING), ("_id", DESCENDING)]),
        ("id", True, [("_id", DESCENDING)]),
    ],
)
def test_mongo_query_sorts_with_id_as_tie_breaker(sort, descending, expected):
    assert find_query(None, sort, descending, 10).sort == expected


def test_mongo_query_continues_after_an_id_also_with_an_id_filter():
    assert find_query({}, "id", True, 10, "m4").filter == {"_id": {"$lt": "m4"}}
    both = find_query({"id": "m3"}, "id", False, 10, "m1").filter
    assert both == {"_id": {"$eq": "m3", "$gt": "m1"}}


def test_mongo_query_caps_the_limit_and_validates_like_sql():
    assert find_query({}, None, False, MAX_LIMIT + 1).limit == MAX_LIMIT
    with pytest.raises(ValueError, match="limit"):
        find_query({}, None, False, 0)  # 0 would mean "no limit" to MongoDB
    with pytest.raises(ValueError):
        find_query({"author": {"id": "u1"}}, None, False, 10)
    with pytest.raises(ValueError):
        find_query({}, "author.name", False, 10)


def test_mongo_stored_before_is_in_the_insert_time_unit():
    moment = datetime(2026, 12, 4, 10, 0, 0, 123456, tzinfo=UTC)
    assert microseconds(moment) == 1_796_378_400_123_456


def test_mongo_documents_map_id_and_hide_the_insert_time():
    stored = to_mongo("m1", {"text": SHIRT, "likes": 2}, 1_700_000_000_000_000)
    assert stored == {"_id": "m1", CREATED: 1_700_000_000_000_000, "text": SHIRT, "likes": 2}
    read = {key: value for key, value in stored.items() if key != CREATED}  # the projection
    assert from_mongo(read) == {"id": "m1", "text": SHIRT, "likes": 2}


async def test_mongo_adapter_validates_before_any_io():
    store = MongoDocuments("mongodb://127.0.0.1:9", "unused")  # nothing listens there
    with pytest.raises(TypeError, match="datetime"):
        await store.insert("chat", {"at": datetime.now(UTC)})
    with pytest.raises(ValueError, match="cannot be changed"):
        await store.update("chat", "m1", {"id": "m2"})
    await store.close()


async def test_make_documents_picks_the_adapter_from_the_url():
    sessions = object()
    assert isinstance(make_documents("", sessions), SqlDocuments)
    mongo = make_documents("mongodb://127.0.0.1:9", sessions, "db")
    assert isinstance(mongo, MongoDocuments)
    await mongo.close()
