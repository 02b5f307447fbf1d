"""Password hashing as configured in production: argon2id with RFC 9106 costs."""

from argon2 import extract_parameters

from commerce.accounts.passwords import Passwords


async def test_default_hashes_are_argon2id_with_production_costs():
    passwords = Passwords()
    stored = await passwords.hash("correct horse battery staple")
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert (params.time_cost, params.memory_cost) == (3, 65536)
    assert await passwords.verify(stored, "correct horse battery staple")
    assert not await passwords.verify(stored, "Correct horse battery staple")
    assert not await passwords.verify(None, "anything")
    assert not await passwords.verify("not a hash", "anything")


async def test_cheaper_hashes_are_upgraded_at_login():
    cheap = await Passwords(time_cost=1, memory_kib=1024).hash("pw")
    assert Passwords().needs_rehash(cheap)
    assert not Passwords(time_cost=1, memory_kib=1024).needs_rehash(cheap)
