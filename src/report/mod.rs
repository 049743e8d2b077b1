//! Turns a Sample into an AWS IoT Device Defender metrics report (protocol doc §1–§4):
//! model, key names, limits, deltas and the JSON/CBOR encoders. No I/O here.
