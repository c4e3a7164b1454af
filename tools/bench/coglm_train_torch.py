#!/usr/bin/env python3
"""PyTorch-eager peer for `cogview train coglm` speed: the default model's CogLM, same shapes.

The network is the default model's CogLM as `cogview train coglm` builds it
(crates/cogview-train/src/coglm.rs, `default_config`): a sandwich-LayerNorm GPT (SAT's
BaseModel with layernorm_order = "sandwich"), 6 layers, hidden 192, 6 heads of 32, MLP 768 with
GELU, learned positions, the output head tied to the word embeddings, vocabulary 2652. One step
is what cogview's step computes: forward over a padded batch with an additive attention bias
(causal mask, +1.4 on text keys, padding hidden), the masked cross-entropy over the whole
vocabulary, backward, AdamW (f32 weights and moments). The batch is random tokens of cogview's
sequence shape (text, <start_of_image>, 81 image tokens: 9×9 grid), so only the model's arithmetic
is timed; cogview's own step also renders its scenes and encodes them with the VQ tokenizer
(included in the steps/s that `cogview train` prints; docs/default-model.md).

    python tools/bench/coglm_train_torch.py --threads 1 --batch 16 --steps 30
    python tools/bench/coglm_train_torch.py --threads 1 --batch 16 --steps 30 --dtype bf16

Prints one JSON line: steps/s over the timed steps (after --warmup untimed steps).
bf16 runs the forward and backward under CPU autocast (f32 master weights, as mixed precision).
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


class Layer(torch.nn.Module):
    def __init__(self, hidden, heads, inner, eps):
        super().__init__()
        self.heads = heads
        self.input_layernorm = torch.nn.LayerNorm(hidden, eps=eps)
        self.query_key_value = torch.nn.Linear(hidden, 3 * hidden)
        self.dense = torch.nn.Linear(hidden, hidden)
        self.third_layernorm = torch.nn.LayerNorm(hidden, eps=eps)
        self.post_attention_layernorm = torch.nn.LayerNorm(hidden, eps=eps)
        self.dense_h_to_4h = torch.nn.Linear(hidden, inner)
        self.dense_4h_to_h = torch.nn.Linear(inner, hidden)
        self.fourth_layernorm = torch.nn.LayerNorm(hidden, eps=eps)

    def forward(self, x, bias):
        b, n, h = x.shape
        d = h // self.heads
        q, k, v = self.query_key_value(self.input_layernorm(x)).chunk(3, dim=-1)
        q, k, v = (t.view(b, n, self.heads, d).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
        attn = torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v
        attn = self.dense(attn.transpose(1, 2).reshape(b, n, h))
        x = x + self.third_layernorm(attn)
        mlp = self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(self.post_attention_layernorm(x))))
        return x + self.fourth_layernorm(mlp)


class CogLM(torch.nn.Module):
    def __init__(self, vocab, hidden, heads, inner, layers, max_len, eps):
        super().__init__()
        self.word_embeddings = torch.nn.Embedding(vocab, hidden)
        self.position_embeddings = torch.nn.Embedding(max_len, hidden)
        self.layers = torch.nn.ModuleList(
            Layer(hidden, heads, inner, eps) for _ in range(layers)
        )
        self.final_layernorm = torch.nn.LayerNorm(hidden, eps=eps)
        for name, w in self.named_parameters():
            if w.dim() == 2:  # SAT's initialisation: N(0, 0.02) for every matrix
                torch.nn.init.normal_(w, std=0.02)

    def forward(self, tokens, positions, bias):
        x = self.word_embeddings(tokens) + self.position_embeddings(positions)
        for layer in self.layers:
            x = layer(x, bias)
        return self.final_layernorm(x) @ self.word_embeddings.weight.t()


def batch(b, text_len, grid, vocab, image_vocab):
    n = text_len + 1 + grid * grid
    tokens = torch.randint(0, vocab, (b, n))
    tokens[:, text_len + 1 :] = torch.randint(0, image_vocab, (b, grid * grid))
    positions = torch.arange(n).expand(b, n)
    causal = torch.full((n, n), float("-inf")).triu(1)
    causal[text_len:, :text_len] += 1.4
    bias = causal.expand(b, 1, n, n).contiguous()
    targets = torch.roll(tokens, -1, dims=1)
    weights = torch.zeros(b, n)
    weights[:, text_len : n - 1] = 1.0
    return tokens, positions, bias, targets, weights


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--text-len", type=int, default=12)
    p.add_argument("--grid", type=int, default=9)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vocab, image_vocab = 2652, 1024
    model = CogLM(vocab, 192, 6, 768, 6, 1024, 1e-5)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    data = batch(a.batch, a.text_len, a.grid, vocab, image_vocab)

    def step():
        tokens, positions, bias, targets, weights = data
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            logits = model(tokens, positions, bias)
        ce = F.cross_entropy(logits.float().reshape(-1, vocab), targets.reshape(-1), reduction="none")
        loss = (ce * weights.reshape(-1)).sum() / weights.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    dt = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "peer": "pytorch-eager",
                "torch": torch.__version__,
                "threads": a.threads,
                "dtype": a.dtype,
                "batch": a.batch,
                "sequence": a.text_len + 1 + a.grid * a.grid,
                "steps": a.steps,
                "steps_per_s": a.steps / dt,
                "final_loss": loss,
            }
        )
    )


if __name__ == "__main__":
    main()
