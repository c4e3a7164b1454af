#!/usr/bin/env python3
"""Random mid-size CogLM, DSR and ItersR models without PyTorch: 12 layers x 768, 12 heads, FFN
3072, vocabulary 150003, 20000 image codes, <start_of_image> = 150000 (the sizes of
coglm_torch_bench.py / sr_torch_bench.py --make-model), as SAT folders whose weight file is a
safetensors file (cogview reads either format). Weights are bf16, a block of 65536 uniform values
with standard deviation 0.02 repeated (speed measurements only); LayerNorm weights 1, biases 0.

  python3 tools/bench/make_mid_models.py target/bench/mid
  # -> target/bench/mid/coglm, target/bench/mid/sr/dsr, target/bench/mid/sr/itersr
"""
import json
import os
import random
import struct
import sys

L, H, HEADS, FFN, VOCAB, IMAGE_VOCAB, SOI = 12, 768, 12, 3072, 150003, 20000, 150000


def backbone():
    t = [("transformer.word_embeddings.weight", [VOCAB, H]),
         ("transformer.position_embeddings.weight", [1024, H]),
         ("transformer.final_layernorm.weight", [H]), ("transformer.final_layernorm.bias", [H])]
    for i in range(L):
        p = f"transformer.layers.{i}"
        for ln in ["input_layernorm", "third_layernorm", "post_attention_layernorm", "fourth_layernorm"]:
            t += [(f"{p}.{ln}.weight", [H]), (f"{p}.{ln}.bias", [H])]
        t += [(f"{p}.attention.query_key_value.weight", [3 * H, H]), (f"{p}.attention.query_key_value.bias", [3 * H]),
              (f"{p}.attention.dense.weight", [H, H]), (f"{p}.attention.dense.bias", [H]),
              (f"{p}.mlp.dense_h_to_4h.weight", [FFN, H]), (f"{p}.mlp.dense_h_to_4h.bias", [FFN]),
              (f"{p}.mlp.dense_4h_to_h.weight", [H, FFN]), (f"{p}.mlp.dense_4h_to_h.bias", [H])]
    return t


def sr(kind):
    t = backbone() + [("mixins.extra_position_embedding.position_embeddings.weight", [3600, H])]
    if kind == "dsr":
        for i in range(L):
            t += [(f"mixins.attention_plus.query_key_value.{i}.weight", [3 * H, H]),
                  (f"mixins.attention_plus.query_key_value.{i}.bias", [3 * H]),
                  (f"mixins.attention_plus.dense.{i}.weight", [H, H]),
                  (f"mixins.attention_plus.dense.{i}.bias", [H])]
    return t


def bf16(x):
    return struct.unpack("<I", struct.pack("<f", x))[0] >> 16


def write(folder, tensors, config, seed):
    rng = random.Random(seed)
    block = b"".join(struct.pack("<H", bf16(rng.uniform(-0.0346, 0.0346))) for _ in range(65536))
    one, zero = struct.pack("<H", bf16(1.0)), b"\0\0"
    header, offset, payload = {}, 0, []
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        if "layernorm" in name and name.endswith(".weight"):
            data = one * n
        elif name.endswith(".bias"):
            data = zero * n
        else:
            data = (block * (2 * n // len(block) + 1))[: 2 * n]
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + 2 * n]}
        offset += 2 * n
        payload.append(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(os.path.join(folder, "1"), exist_ok=True)
    with open(os.path.join(folder, "1", "mp_rank_00_model_states.pt"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for d in payload:
            f.write(d)
    with open(os.path.join(folder, "latest"), "w") as f:
        f.write("1")
    with open(os.path.join(folder, "model_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"{folder}: {len(tensors)} tensors, {offset / 2 / 1e6:.1f} M parameters")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "target/bench/mid"
    base = {"num_layers": L, "hidden_size": H, "num_attention_heads": HEADS, "vocab_size": VOCAB,
            "layernorm_order": "sandwich", "model_parallel_size": 1, "max_sequence_length": 1024,
            "image_vocab_size": IMAGE_VOCAB, "start_of_image_id": SOI}
    write(os.path.join(out, "coglm"), backbone(), dict(base, model_class="BaseModel"), 1)
    srb = dict(base, kernel_size=5, kernel_size2=5, new_sequence_length=4624)
    write(os.path.join(out, "sr", "dsr"), sr("dsr"), dict(srb, model_class="DsrModel", layout=[96, 496, 4096]), 2)
    write(os.path.join(out, "sr", "itersr"), sr("itersr"), dict(srb, model_class="ItersrModel", layout=[16, 3616]), 3)


if __name__ == "__main__":
    main()
