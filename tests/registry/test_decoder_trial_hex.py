"""The decoder trial endpoint says why hex is not hex (issue 15), over real HTTP."""

from __future__ import annotations

from tests.support.api import running_api
from tests.support.database import create_database, drop_database


async def test_odd_hex_in_a_decoder_trial_is_explained() -> None:
    url = await create_database("iotd_trial_hex")
    try:
        async with running_api(url) as api:
            odd = await api.client.post("/api/v1/decoders/elsys/test", json={"payload_hex": "0101170"})
            assert odd.status_code == 422
            assert "payload_hex: hex payload has an odd number of digits (7)" in odd.text
            ok = await api.client.post("/api/v1/decoders/elsys/test", json={"payload_hex": "01 01 17"})
            assert ok.status_code == 200 and ok.json()["data"]["temperature"] == 27.9
    finally:
        await drop_database(url)
