"""The official OpenAI Python client against `cogview serve` (run by tests/openai_client.rs).

Usage: openai_client.py BASE_URL API_KEY OUT_DIR. Writes the images it gets into OUT_DIR and prints
one JSON line describing what happened, which the Rust test checks.
"""
import base64
import io
import json
import sys

import openai

base_url, api_key, out = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600)
report = {"openai_version": openai.__version__}

models = client.models.list()
report["models"] = [m.id for m in models.data]

# images.generate with cogview's own fields as extra_body.
gen = client.images.generate(
    model="cogview",
    prompt="a large blue circle in the center",
    n=2,
    size="216x216",
    response_format="b64_json",
    extra_body={"seed": 7, "only_first_stage": True},
)
report["generate"] = []
for k, d in enumerate(gen.data):
    png = base64.b64decode(d.b64_json)
    path = f"{out}/generate-{k}.png"
    with open(path, "wb") as f:
        f.write(png)
    report["generate"].append(path)
report["created"] = gen.created

# images.edit: the first image, with an OpenAI-style mask (transparent = redraw) made here
# from the PNG bytes: RGBA, left half transparent.
import struct
import zlib


def rgba_png(w, h, pixel):
    raw = b"".join(b"\x00" + b"".join(pixel(x, y) for x in range(w)) for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


mask = rgba_png(216, 216, lambda x, y: b"\x00\x00\x00\x00" if x < 108 else b"\x00\x00\x00\xff")
with open(report["generate"][0], "rb") as image:
    edit = client.images.edit(
        image=("input.png", image.read(), "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a large red circle in the center",
        n=1,
        size="216x216",
        response_format="b64_json",
        extra_body={"seed": 3},
    )
png = base64.b64decode(edit.data[0].b64_json)
with open(f"{out}/edit-0.png", "wb") as f:
    f.write(png)
report["edit"] = [f"{out}/edit-0.png"]

# Errors arrive as the client's typed exceptions with the server's message.
try:
    client.images.generate(prompt="a circle", n=99)
    report["error"] = None
except openai.BadRequestError as e:
    report["error"] = {"status": e.status_code, "message": str(e)}

# A wrong key is an authentication error.
try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    report["auth"] = None
except openai.AuthenticationError as e:
    report["auth"] = e.status_code

print(json.dumps(report))
