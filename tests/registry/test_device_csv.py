"""The device CSV format without a database: header rules, cells, per-row errors with line numbers, export."""

from __future__ import annotations

from typing import Any

import pytest

from registry.device_csv import (
    COLUMNS,
    CsvFileError,
    ParsedRow,
    RowResult,
    export_rows,
    format_tags,
    parse_rows,
    parse_tags,
    split_chunks,
)

APP = "5f0c6d3e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
IMEI = "490154203237518"


def only(text: str) -> dict[str, Any]:
    rows = parse_rows(text)
    assert len(rows) == 1 and isinstance(rows[0], ParsedRow), rows
    return rows[0].fields


def errors(text: str) -> list[tuple[int, str]]:
    return [(r.line, r.reason or "") for r in parse_rows(text) if isinstance(r, RowResult)]


@pytest.mark.parametrize(("text", "expected"), [
    ("name,kind,dev_eui\nroom,lorawan,A8-17-58-FF-FE-03-12-AB\n",
     {"name": "room", "kind": "lorawan", "dev_eui": "a81758fffe0312ab"}),
    ("\ufeffname,kind,dev_eui\r\nroom,lorawan,a81758fffe0312ab\r\n",
     {"name": "room", "kind": "lorawan", "dev_eui": "a81758fffe0312ab"}),
    ("name;kind;imei;lat;lon\nmåler;NBIOT;490154203237518;55,6761;12,5683\n",
     {"name": "måler", "kind": "nbiot", "imei": IMEI, "lat": 55.6761, "lon": 12.5683}),
    (" Name , KIND ,tags\nx,http,floor=2; room = 1.12 \n",
     {"name": "x", "kind": "http", "tags": {"floor": "2", "room": "1.12"}}),
    ('name,kind,metadata,interval_s\nx,mqtt,"{""a"": [1, 2]}",900\n',
     {"name": "x", "kind": "mqtt", "metadata": {"a": [1, 2]}, "interval_s": 900}),
    (f"name,kind,application_id,decoder,tags,metadata\nx,http,{APP.upper()},,,\n",
     {"name": "x", "kind": "http", "application_id": APP, "decoder": None, "tags": {}, "metadata": {}}),
    ("name,kind,dev_eui,app_key\nx,lorawan,0011223344556677,\n",                    # empty app_key: keep stored
     {"name": "x", "kind": "lorawan", "dev_eui": "0011223344556677"}),
    ("name,kind,dev_eui,app_key\nx,lorawan,0011223344556677,00112233445566778899AABBCCDDEEFF\n",
     {"name": "x", "kind": "lorawan", "dev_eui": "0011223344556677", "app_key": "00112233445566778899aabbccddeeff"}),
    ("name,kind,\nx,http,\n", {"name": "x", "kind": "http"}),                      # a trailing delimiter
    ('name,kind\n"two\nlines",http\n', {"name": "two\nlines", "kind": "http"}),
])
def test_rows_are_cleaned(text: str, expected: dict[str, Any]) -> None:
    assert only(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("", "header"),
    ("\n\nname,kind\n", "header"),
    ("name,kind,colour\nx,http,red\n", "unknown column 'colour'"),
    ("name;kind;colour;size\n", "unknown columns 'colour', 'size'"),
    ("name,kind,name\n", "more than once"),
    ("name,dev_eui\n", "required column kind"),
    ("name,kind,lat\n", "lat and lon"),
])
def test_file_problems_refuse_the_whole_file(text: str, words: str) -> None:
    with pytest.raises(CsvFileError, match=words):
        parse_rows(text)


def test_too_many_rows_is_a_file_problem() -> None:
    text = "name,kind\n" + "x,http\n" * 4
    assert len(parse_rows(text, max_rows=4)) == 4
    with pytest.raises(CsvFileError, match="more than 3 rows"):
        parse_rows(text, max_rows=3)


def test_bad_rows_have_their_line_numbers_and_reasons() -> None:
    text = ("name,kind,dev_eui,imei,lat,lon,interval_s,tags,metadata,application_id\r\n"
            "ok,lorawan,0011223344556677,,,,,,,\r\n"                   # line 2
            "bad eui,lorawan,xyz,,,,,,,\r\n"                           # 3
            "\r\n"                                                     # 4: blank, skipped
            "no eui,lorawan,,,,,,,,\r\n"                               # 5
            "meter,nbiot,,490154203237519,,,,,,\r\n"                   # 6
            "half,http,,,55.1,,,,,\r\n"                                # 7
            "far,http,,,91,10,,,,\r\n"                                 # 8
            "slow,http,,,,,-5,,,\r\n"                                  # 9
            "tags,http,,,,,,floor,,\r\n"                               # 10
            "meta,http,,,,,,,[1],\r\n"                                 # 11
            "app,http,,,,,,,,not-a-uuid\r\n"                           # 12
            ",http,,,,,,,,\r\n"                                        # 13
            "short,http\r\n"                                           # 14
            "sat,satellite,,,,,,,,\r\n"                                # 15
            '"multi\r\nline",lorawan,,,,,,,,\r\n'                      # 16-17
            "last,lorawan,zz,,,,,,,\r\n")                              # 18
    assert errors(text) == [
        (3, "dev_eui must be 16 hex characters, got 'xyz'"),
        (5, "a lorawan device needs a dev_eui (16 hex characters)"),
        (6, "imei must be 15 digits with a valid check digit, got '490154203237519'"),
        (7, "give both lat and lon, or neither"),
        (8, "lat must be between -90 and 90, got 91.0"),
        (9, "interval_s must be whole seconds between 1 and 31622400, got '-5'"),
        (10, "tags are key=value;key=value, got 'floor'"),
        (11, "metadata must be a JSON object, got '[1]'"),
        (12, "application_id must be a UUID, got 'not-a-uuid'"),
        (13, "name must not be empty"),
        (14, "2 values, but the header has 10 columns"),
        (15, "kind must be one of lorawan, nbiot, http, mqtt, got 'satellite'"),
        (16, "a lorawan device needs a dev_eui (16 hex characters)"),
        (18, "dev_eui must be 16 hex characters, got 'zz'"),
    ]
    assert [r.line for r in parse_rows(text) if isinstance(r, ParsedRow)] == [2]


@pytest.mark.parametrize(("text", "tags"), [
    ("", {}),
    ("a=1", {"a": "1"}),
    ("a=1;b=x=y;", {"a": "1", "b": "x=y"}),
    (r"note=one\;two;k\=ey=v", {"note": "one;two", "k=ey": "v"}),
    (r"path=c:\\temp", {"path": "c:\\temp"}),
])
def test_tags_text_round_trips(text: str, tags: dict[str, str]) -> None:
    assert parse_tags(text) == tags
    assert parse_tags(format_tags(tags)) == tags


def test_tags_refuse_duplicates_and_missing_keys() -> None:
    for text, words in (("a=1;a=2", "given twice"), ("=1", "key=value"), ("a", "key=value")):
        with pytest.raises(ValueError, match=words):
            parse_tags(text)


DEVICE = {"name": 'Room "1", east', "kind": "lorawan", "application_id": APP, "dev_eui": "a81758fffe0312ab",
          "join_eui": "70b3d57ed0000000", "imei": None, "imsi": None, "decoder": "elsys", "lat": 55.6761,
          "lon": 12.5683, "interval_s": 600, "tags": {"floor": "1", "note": "a;b"}, "metadata": {"x": [1, "ø"]},
          "has_app_key": True}


def test_export_has_every_column_but_never_the_app_key_and_reads_back() -> None:
    text = export_rows([DEVICE, {**DEVICE, "name": "nb", "kind": "nbiot", "dev_eui": None, "join_eui": None,
                                 "imei": IMEI, "tags": {}, "metadata": {}, "lat": None, "lon": None}])
    header, first, second, end = text.split("\r\n")
    assert header == ",".join(COLUMNS) and end == ""
    assert first.startswith('"Room ""1"", east",lorawan,') and ",,,,elsys," in first
    assert second == f"nb,nbiot,{APP},,,,{IMEI},,elsys,,,600,,"
    back = parse_rows(text)
    assert all(isinstance(r, ParsedRow) for r in back)
    fields = back[0].fields if isinstance(back[0], ParsedRow) else {}
    assert "app_key" not in fields
    assert {k: fields[k] for k in COLUMNS if k != "app_key"} == {k: DEVICE[k] for k in COLUMNS if k != "app_key"}


def test_chunks_keep_the_files_line_numbers() -> None:
    text = "\ufeffname;kind\r\na;http\r\n\r\nb;http\r\n\"c\r\nc\";http\r\nd;http\r\ne;http"
    chunks, total = split_chunks(text, 2)
    assert total == 5 and [c.rows for c in chunks] == [2, 2, 1]
    assert all(c.text.startswith("name;kind\r\n") for c in chunks)
    found = [(c.file_line(r.line), r.fields["name"]) for c in chunks for r in parse_rows(c.text)
             if isinstance(r, ParsedRow)]
    assert found == [(2, "a"), (4, "b"), (5, "c\r\nc"), (7, "d"), (8, "e")]
    with pytest.raises(CsvFileError, match="unknown column"):
        split_chunks("name,kind,x\n", 10)


FORMULAS = {"name": "=HYPERLINK(\"http://x\")", "decoder": "+cmd", "tags": {"-k": "@v"}, "imsi": None,
            "join_eui": None}


def test_export_guards_formula_cells_and_keeps_numbers_numeric() -> None:
    rows = [{**DEVICE, "name": name, "lat": -12.5, "lon": -45.25, "interval_s": 60}
            for name in ("=1+2", "+x", "-5", "@SUM(A1)", "\tx", "\rx", "'quoted", "plain")]
    text = export_rows(rows)
    cells = [line.split(",", 1)[0] for line in text.split("\r\n")[1:-1]]
    assert cells == ["'=1+2", "'+x", "'-5", "'@SUM(A1)", "'\tx", "\"'\rx\"", "''quoted", "plain"]
    assert all(",-12.5,-45.25,60," in line for line in text.split("\r\n")[1:-1])
    tagged = export_rows([{**DEVICE, **FORMULAS}])
    assert "'=HYPERLINK" in tagged and ",'+cmd," in tagged and ",'-k=@v," in tagged


def test_export_then_import_changes_nothing() -> None:
    devices = [{**DEVICE, "name": name, "lat": -33.8688, "lon": -151.2093} for name in
               ("=1+2", "-5", "'quoted", "''twice", "plain", "@x")] + [{**DEVICE, **FORMULAS}]
    back = parse_rows(export_rows(devices))
    assert all(isinstance(r, ParsedRow) for r in back), back
    for device, row in zip(devices, back, strict=True):
        fields = row.fields if isinstance(row, ParsedRow) else {}
        assert {k: fields[k] for k in COLUMNS if k not in ("app_key", "dev_eui")} == {
            k: device[k] for k in COLUMNS if k not in ("app_key", "dev_eui")}
    assert only("name,kind\n'hello,http\n")["name"] == "'hello"        # only a guard is taken off
    assert only("name,kind\n'=SUM(1),http\n")["name"] == "=SUM(1)"


def test_a_nul_or_an_oversized_cell_is_that_rows_error() -> None:
    text = ("name,kind,metadata\n"
            "ok,http,\n"
            "nul\x00name,http,\n"
            f"big,http,\"{{\"\"a\"\": \"\"{'x' * 70_000}\"\"}}\"\n"
            "after,http,\n")
    assert errors(text) == [(3, "name contains a NUL character; remove it"),
                            (4, "metadata is longer than 65536 characters")]
    assert [r.fields["name"] for r in parse_rows(text) if isinstance(r, ParsedRow)] == ["ok", "after"]


def test_a_huge_cell_of_line_breaks_is_refused_without_building_millions_of_lines() -> None:
    import tracemalloc

    text = 'name,kind\n"' + "a\n" * 2_000_000 + '",http\n'
    tracemalloc.start()
    try:
        with pytest.raises(CsvFileError, match="line 2: a cell is longer than 65536 characters"):
            parse_rows(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(text), peak          # was ~30 times the text: one string per physical line
    with pytest.raises(CsvFileError, match="empty lines"):
        parse_rows("name,kind\n" + "\n" * 60_000 + "x,http\n")
