#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets (fuzz/corpus/TARGET/seed-*) from the project's own
small files and a few hand-made ones (no torch needed). The corpora committed beside them were
grown by the fuzzer from these seeds and minimised with `-merge=1` (docs/reliability.md)."""
import io, json, os, shutil, struct, subprocess, sys, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def copy(target, name, path):
    with open(os.path.join(ROOT, path), "rb") as f:
        put(target, name, f.read())


def long1(v):
    return b"\x8a\x08" + struct.pack("<q", v)


def tup(vs):
    return b"(" + b"".join(long1(v) for v in vs) + b"t"


def s(text):
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def tensor(key, cls, offset, shape, stride):
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + b"(" + s("storage") + b"ctorch\n" + cls + b"\n"
            + s(key) + s("cpu") + b"K\x01tQ" + long1(offset) + tup(shape) + tup(stride) + b"tR")


def state_dict(entries, module=False):
    body = b"}(" + b"".join(s(n) + t for n, t in entries) + b"u"
    if module:
        body = b"}(" + s("module") + body + b"u"
    return b"\x80\x02" + body + b"."


def torch_zip(pkl, storages):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        for k, v in storages.items():
            z.writestr("archive/data/" + k, v)
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


f32 = lambda n: struct.pack("<%df" % n, *[float(i) / 7 for i in range(n)])

# torch zip + pickle
p1 = state_dict([("w", tensor("0", b"FloatStorage", 0, [2, 3], [3, 1]))])
p2 = state_dict([("a", tensor("0", b"HalfStorage", 2, [3, 2], [1, 3])),
                 ("b", tensor("1", b"FloatStorage", 0, [4], [0]))], module=True)
put("torch_zip", "small", torch_zip(p1, {"0": f32(6)}))
put("torch_zip", "module-strided", torch_zip(p2, {"0": f32(4), "1": f32(1)}))
put("pickle", "small", p1)
put("pickle", "module-strided", p2)
with zipfile.ZipFile(os.path.join(ROOT, "tests/fixtures/coglm/tiny-f32/1000/mp_rank_00_model_states.pt")) as z:
    real = next(n for n in z.namelist() if n.endswith("data.pkl"))
    put("pickle", "coglm-tiny-data.pkl", z.read(real))

# safetensors
put("safetensors", "small", safetensors({"w": ("F32", [2, 3], f32(6)), "b": ("BF16", [2], b"\x80\x3f\x00\x40")},
                                        {"format": "pt"}))
put("safetensors", "dtypes", safetensors({"i": ("I64", [1], struct.pack("<q", 5)), "u": ("U8", [3], b"abc"),
                                          "e": ("F16", [0], b"")}))

# a SAT folder: model_config.json, NUL, the checkpoint
for fixture in ["coglm/tiny-f32", "sr/dsr-tiny", "sr/itersr-tiny"]:
    path = os.path.join(ROOT, "tests/fixtures", fixture, "model_config.json")
    if os.path.exists(path):
        cfg = open(path, "rb").read()
        put("sat_folder", fixture.replace("/", "-"), cfg + b"\x00" + torch_zip(p1, {"0": f32(6)}))

# ice_text.model and prompts
copy("text_model", "default-ice_text.model", "models/default/ice_text.model")
for i, prompt in enumerate(["a large blue circle in the center", "一只可爱的猫 高清摄影", "two red squares<start_of_image>",
                            "  many   spaces\tand\nlines ", "\u00e9\u0301 ＡＢＣ ①"]):
    put("prompt", str(i), prompt.encode())

# pipeline TOML
copy("pipeline_toml", "default", "models/default/pipeline.toml")
for f in sorted(os.listdir(os.path.join(ROOT, "examples/configs"))):
    copy("pipeline_toml", f, os.path.join("examples/configs", f))

# token grids
put("grid_file", "full", json.dumps({"format": "cogview-token-grid", "version": 1, "height": 2, "width": 3,
                                      "compression": 8, "tokenizer_sha256": "ab" * 32,
                                      "ids": [1, 2, 3, 4, 5, 19999]}).encode())
put("grid_file", "short", b'{"height": 1, "width": 2, "ids": [7, 8]}')

# images and masks (small)
copy("image", "shapes96x128.png", "tests/fixtures/icetk/images/shapes96x128.png")
copy("image", "cute_girl.jpg", "tests/fixtures/icetk/images/cute_girl.jpg")
w, h = 5, 4
px = bytes((x * 50 + y * 13 + c * 70) % 256 for y in range(h) for x in range(w) for c in range(3))
put("image", "small.ppm", b"P6\n%d %d\n255\n" % (w, h) + px)
row = (w * 3 + 3) // 4 * 4
bmp_px = b"".join(px[y * w * 3:(y + 1) * w * 3][::-1][::-1] + b"\0" * (row - w * 3) for y in reversed(range(h)))
put("image", "small.bmp", b"BM" + struct.pack("<IHHI", 54 + len(bmp_px), 0, 0, 54)
    + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(bmp_px), 2835, 2835, 0, 0) + bmp_px)
put("image", "small.tga", struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 24, 0) + px)
put("image", "mask.pgm", b"P5\n4 4\n255\n" + bytes([0, 255] * 8))

# .npy
copy("npy", "default-cluster_label.npy", "models/default/cluster_label.npy")
copy("npy", "c16_ids.npy", "tests/fixtures/icetk/vq/girl160_c16_ids.npy")

# PNG records: made by the command (argv[1]: the cogview binary), first stage only
if len(sys.argv) > 1:
    out = "/tmp/cogview-seed-png"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.argv[1], "generate", "a red square", "--only-first-stage", "--seed", "1", "--quiet",
                    "--out", out], check=True)
    for f in os.listdir(out):
        copy("png_record", f, os.path.join(out, f))
