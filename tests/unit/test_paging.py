"""Lists shown a page at a time (``shared.paging``): every row on exactly one page, in order,
and whatever ``?page=`` says, a page that exists."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.paging import name_key, page_of


@given(st.integers(min_value=0, max_value=450), st.integers(min_value=1, max_value=120))
def test_the_pages_hold_every_row_once_in_order(count: int, size: int) -> None:
    rows = list(range(count))
    first = page_of(rows, None, size)
    shown = [row for number in range(1, first.pages + 1) for row in page_of(rows, str(number), size).rows]
    assert shown == rows and first.total == count
    assert all(len(page_of(rows, str(n), size).rows) == size for n in range(1, first.pages))  # only the last is short


@given(st.text(max_size=12), st.integers(min_value=0, max_value=450))
def test_any_page_asked_for_is_a_page_that_exists(requested: str, count: int) -> None:
    page = page_of(list(range(count)), requested, 100)
    assert 1 <= page.number <= page.pages == max(1, -(-count // 100))


def test_a_number_out_of_range_is_the_nearest_page_and_anything_else_the_first() -> None:
    rows = list(range(250))
    assert [page_of(rows, asked).number for asked in ("0", "2", "3", "999999", "99999999999", "-1", "abc", "", "1e3", "²", "٣")] == [
        1, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1]
    assert page_of([], "4").number == 1 and page_of([], None).pages == 1


def test_names_are_in_the_order_people_expect() -> None:
    names = ["zoé Zimmer", "Élodie Bernard", "Chloé Martin", "Bruno Alves", "émile Zola", " Ørjan Berg", "adele Vance"]
    assert sorted(names, key=name_key) == ["adele Vance", "Bruno Alves", "Chloé Martin", "Élodie Bernard", "émile Zola",
                                           "zoé Zimmer", " Ørjan Berg"]
