"""Values the Python client checks expect: the rows of
`fixtures::all_types_batch()` (tests/src/fixtures.rs) and facts about the
2000-row sample data set the tests register."""

from datetime import date, datetime, timedelta
from decimal import Decimal

COLUMNS = [
    "id", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64",
    "dec", "s", "b", "flag", "d", "ts", "t",
]

# The rows of fixtures::all_types_batch(), as Python values.
EXPECTED_ALL_TYPES = [
    (1, -128, -32768, -2147483648, -9223372036854775808,
     255, 65535, 4294967295, 18446744073709551615,
     1.5, -2.25, Decimal("12345.678"), "héllo, wörld", b"\x00\x01\xff", 1,
     date(2026, 1, 31), datetime(2026, 1, 31, 23, 59, 58, 123456),
     timedelta(hours=12, minutes=34, seconds=56, microseconds=500000)),
    (2,) + (None,) * 17,
    (3, 127, 32767, 2147483647, 9223372036854775807,
     0, 0, 0, 0,
     -0.5, 1e300, Decimal("-0.001"), "", b"", 0,
     date(1970, 1, 1), datetime(1970, 1, 1, 0, 0, 0), timedelta(0)),
]

SAMPLE_TABLES = ["assets_csv", "sensors", "sensors_avro", "sensors_csv", "sensors_csv_gz", "sensors_json"]
ASSET_TYPES = ["CNC_MILL", "GRINDER", "LATHE", "PRESS"]
SAMPLE_ROWS = 2000


def check_row(label, got, expected):
    """Asserts a fetched all_types row equals the expected one, value and type."""
    assert len(got) == len(expected), f"{label}: {len(got)} columns, expected {len(expected)}: {got!r}"
    for name, g, e in zip(COLUMNS, got, expected):
        assert type(g) is type(e) and g == e, (
            f"{label}, column {name}: got {g!r} ({type(g).__name__}), expected {e!r} ({type(e).__name__})"
        )
