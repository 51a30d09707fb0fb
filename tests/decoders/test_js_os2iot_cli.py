"""Issue 15, item 5: ``iotd decode --js FILE --dialect os2iot`` gives the decoder a plausible ChirpStack
uplink event (one gateway in ``rxInfo``, ``txInfo``) and a LoRaWAN device record. Before, ``rxInfo`` was
empty and a typical OS2iot decoder (it reads ``payload.rxInfo[0]``) threw."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.decoders.test_import_cli import iotd

TYPICAL = """
function decode(payload, metadata) {
  var bytes = Buffer.from(payload.data, 'base64');
  return {
    temperature: { type: 'Property', value: bytes.readInt16BE(0) / 10,
                   observedAt: new Date(payload.rxInfo[0].nsTime).toISOString() },
    gateway: payload.rxInfo[0].gatewayId, gatewayV3: payload.rxInfo[0].gatewayID,
    rssi: payload.rxInfo[0].rssi, snr: payload.rxInfo[0].loRaSNR,
    frequency: payload.txInfo.frequency, sf: payload.txInfo.modulation.lora.spreadingFactor,
    devEUI: payload.devEUI, fPort: payload.fPort, fCnt: payload.fCnt,
    battery: metadata.lorawanSettings.deviceStatusBattery, type: metadata.type
  };
}
"""


def test_an_os2iot_decoder_can_be_tried_from_the_cli(tmp_path: Path) -> None:
    script = tmp_path / "decoder.js"
    script.write_text(TYPICAL, encoding="utf-8")
    done = iotd("decode", "--js", str(script), "--dialect", "os2iot", "--hex", "00e7", "--fport", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    out = orjson.loads(done.stdout)
    assert out["errors"] == []
    data = out["data"]
    assert data["temperature"]["value"] == 23.1 and data["temperature"]["observedAt"].endswith("Z")
    assert (data["gateway"], data["gatewayV3"], data["rssi"], data["snr"]) == (
        "0000000000000001", "0000000000000001", -80, 7.5)
    assert (data["frequency"], data["sf"], data["fPort"], data["fCnt"]) == (868100000, 7, 5, 1)
    assert data["devEUI"] == "0000000000000001" and data["type"] == "LORAWAN" and "battery" not in data
