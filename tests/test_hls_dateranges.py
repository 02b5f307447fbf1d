"""EXT-X-DATERANGE lines as the HLS specification writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from media.hls.dateranges import DateRange, program_date_time

START = datetime(2026, 12, 4, 5, 0, 1, 250_000, tzinfo=UTC)


def test_a_pin_with_product_attributes():
    line = DateRange(
        "pin-1",
        START,
        "com.streamcart.pin",
        attributes={"PRODUCT-ID": "p1", "NAME": 'Son "đỏ"\nmới', "PRICE": 199000},
    ).render()
    assert line == (
        '#EXT-X-DATERANGE:ID="pin-1",CLASS="com.streamcart.pin",'
        'START-DATE="2026-12-04T05:00:01.250Z",X-PRODUCT-ID="p1",'
        "X-NAME=\"Son 'đỏ' mới\",X-PRICE=199000"
    )


def test_an_ended_range_has_its_end_and_duration():
    line = DateRange("flash-1", START, "com.streamcart.flash", end=START + timedelta(seconds=90.5))
    assert line.render().endswith('END-DATE="2026-12-04T05:01:31.750Z",DURATION=90.500')


def test_attribute_names_and_values_are_checked():
    with pytest.raises(ValueError):
        DateRange("x", START, "c", attributes={"lower": 1}).render()
    with pytest.raises(ValueError):
        DateRange("x", START, "c", attributes={"ON": True}).render()


def test_program_date_time_is_utc_with_milliseconds():
    local = START.astimezone(datetime.now().astimezone().tzinfo)
    assert program_date_time(local) == "2026-12-04T05:00:01.250Z"
