/*
 * Fixture plugins written in C against include/cogview_plugin.h, for the host's tests
 * (tests/plugins.rs compiles each variant with the system C compiler):
 *
 *   (no macro)              a working plugin "fixture-c": an image tokenizer whose code for a
 *                           block is its mean grey level, and whose decode paints each cell with
 *                           its code (proves a plugin written in C runs through the host)
 *   -DFIXTURE_WRONG_MAJOR   the descriptor says abi_major 2
 *   -DFIXTURE_TRUNCATED     the descriptor's struct_size is 40 (v1.0 needs 80)
 *   -DFIXTURE_ZERO_SCORE    score() is 0 on every device, with a reason
 *   -DFIXTURE_V2_ONLY       exports cogview_plugin_v2 instead of cogview_plugin_v1
 *   -DFIXTURE_MISSING_VTABLE claims a CogLM but gives no CogLM vtable
 *   -DFIXTURE_GRID          also a DSR / ItersR "model" (ABI 1.1): a path containing "itersr"
 *                           loads an ItersR, any other a DSR, both with a tiny geometry; forward()
 *                           walks the assembled input's windows as the header describes and
 *                           writes, per high-resolution cell, the number of keys it sees, the sum
 *                           of their token ids, and the number of unmasked level-0 bias entries
 *   -DFIXTURE_GRID_V10      the same grid vtable declared with ABI 1.0's size (no spec/forward)
 *   -DFIXTURE_GRID_NAN      with FIXTURE_GRID: forward() returns NaN logits
 *   -DFIXTURE_GRID_SHORT    with FIXTURE_GRID: forward() returns one row fewer than asked
 */
#include "cogview_plugin.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cogview_plugin_host_v1 *g_host;

static cogview_plugin_error *fail(const cogview_plugin_host_v1 *host, int32_t code,
                                  const char *subject, const char *msg) {
    return host->error_new(host->user_data, code, subject, strlen(subject), msg, strlen(msg));
}

static int32_t score(const cogview_plugin_host_v1 *host, int32_t device_kind, int32_t device_index,
                     cogview_plugin_error **why_not) {
    (void)device_index;
    (void)device_kind;
#ifdef FIXTURE_ZERO_SCORE
    if (why_not) *why_not = fail(host, COGVIEW_ERR_UNSUPPORTED, "",
                                 "fixture: needs an accelerator this machine lacks");
    return 0;
#else
    if (device_kind != COGVIEW_PLUGIN_DEVICE_CPU) {
        if (why_not) *why_not = fail(host, COGVIEW_ERR_UNSUPPORTED, "", "fixture-c runs on the CPU only");
        return 0;
    }
    return 1;
#endif
}

static cogview_plugin_error *init(const cogview_plugin_host_v1 *host) {
    if (!host || host->struct_size < sizeof(cogview_plugin_host_v1)) return NULL;
    g_host = host;
    if (host->log && host->max_log_level >= COGVIEW_PLUGIN_LOG_INFO) {
        const char *msg = "fixture-c initialised";
        host->log(host->user_data, COGVIEW_PLUGIN_LOG_INFO, "fixture_c", 9, msg, strlen(msg));
    }
    return NULL;
}

/* The tokenizer has no state; a handle is one allocated byte so that free() has work to do. */
static cogview_plugin_error *tok_load(const cogview_plugin_load_params_v1 *params,
                                      cogview_plugin_image_tokenizer **out) {
    if (!params || !out) return fail(g_host, COGVIEW_ERR_INVALID_INPUT, "params", "is NULL");
    if (params->options_toml_len != 0)
        return fail(g_host, COGVIEW_ERR_CONFIG, "options", "fixture-c takes no options");
    *out = (cogview_plugin_image_tokenizer *)malloc(1);
    return NULL;
}

static void tok_free(cogview_plugin_image_tokenizer *t) { free(t); }

static cogview_plugin_error *tok_encode(const cogview_plugin_image_tokenizer *t,
                                        const cogview_plugin_image_v1 *image, uint32_t factor,
                                        uint32_t *ids, size_t ids_len) {
    (void)t;
    if (!image || !image->rgb || factor == 0)
        return fail(g_host, COGVIEW_ERR_INVALID_INPUT, "image", "is NULL");
    uint64_t h = image->height / factor, w = image->width / factor;
    if (ids_len != h * w)
        return fail(g_host, COGVIEW_ERR_INVALID_INPUT, "ids", "wrong length");
    for (uint64_t r = 0; r < h; r++)
        for (uint64_t c = 0; c < w; c++) {
            uint64_t sum = 0;
            for (uint64_t y = r * factor; y < (r + 1) * factor; y++)
                for (uint64_t x = c * factor; x < (c + 1) * factor; x++)
                    for (int k = 0; k < 3; k++) sum += image->rgb[(y * image->width + x) * 3 + k];
            ids[r * w + c] = (uint32_t)(sum / (factor * factor * 3));
        }
    return NULL;
}

static cogview_plugin_error *tok_decode(const cogview_plugin_image_tokenizer *t,
                                        const cogview_plugin_token_grid_v1 *grid, uint32_t factor,
                                        uint8_t *rgb, size_t rgb_len) {
    (void)t;
    if (!grid || !grid->ids || !rgb)
        return fail(g_host, COGVIEW_ERR_INVALID_INPUT, "grid", "is NULL");
    uint64_t width = grid->width * factor, height = grid->height * factor;
    if (rgb_len != width * height * 3)
        return fail(g_host, COGVIEW_ERR_INVALID_INPUT, "rgb", "wrong length");
    for (uint64_t y = 0; y < height; y++)
        for (uint64_t x = 0; x < width; x++) {
            uint32_t id = grid->ids[(y / factor) * grid->width + x / factor];
            if (id > 255)
                return fail(g_host, COGVIEW_ERR_TOKEN_OUT_OF_VOCAB, "grid", "ids must be below 256");
            for (int k = 0; k < 3; k++) rgb[(y * width + x) * 3 + k] = (uint8_t)id;
        }
    return NULL;
}

static const cogview_plugin_image_tokenizer_vtable_v1 tokenizer = {
    COGVIEW_PLUGIN_ABI_MINOR, sizeof(cogview_plugin_image_tokenizer_vtable_v1),
    tok_load, tok_free, tok_encode, tok_decode,
};

#if defined(FIXTURE_GRID) || defined(FIXTURE_GRID_V10)
/* A grid model is its kind, one uint32_t. */
static cogview_plugin_error *grid_load(const cogview_plugin_load_params_v1 *params, cogview_plugin_grid_model **out) {
    if (!params || !out) return fail(g_host, COGVIEW_ERR_INVALID_INPUT, "params", "is NULL");
    uint32_t *kind = (uint32_t *)malloc(sizeof(uint32_t));
    *kind = COGVIEW_PLUGIN_GRID_DSR;
    for (size_t i = 0; i + 6 <= params->path_len; i++)
        if (memcmp(params->path + i, "itersr", 6) == 0) *kind = COGVIEW_PLUGIN_GRID_ITERSR;
    *out = (cogview_plugin_grid_model *)kind;
    return NULL;
}

static void grid_free(cogview_plugin_grid_model *model) { free(model); }

static cogview_plugin_error *grid_predict_v10(const cogview_plugin_grid_model *model, const uint32_t *text,
                                      size_t text_len, const cogview_plugin_token_grid_v1 *grid,
                                      cogview_plugin_floats_v1 *out) {
    (void)model, (void)text, (void)text_len, (void)grid, (void)out;
    return fail(g_host, COGVIEW_ERR_UNSUPPORTED, "", "fixture-c: v1.0 predict is a stub");
}

/* 4 text slots, a 2x2 low-resolution grid (DSR), a 4x4 high-resolution grid, kernels 3 and 3. */
static cogview_plugin_error *grid_spec(const cogview_plugin_grid_model *model, cogview_plugin_grid_spec_v1 *out) {
    if (!model || !out || out->struct_size < sizeof(cogview_plugin_grid_spec_v1))
        return fail(g_host, COGVIEW_ERR_INVALID_INPUT, "out", "is NULL or too small");
    uint32_t kind = *(const uint32_t *)model;
    out->kind = kind;
    out->start_of_image_id = 200;
    out->text_slots = 4;
    out->low_side = kind == COGVIEW_PLUGIN_GRID_DSR ? 2 : 0;
    out->high_side = 4;
    out->kernel_size = 3;
    out->kernel_size2 = 3;
    out->vocab_size = 256;
    out->image_vocab_size = 64;
    out->max_positions = 1024;
    return NULL;
}

static void release_floats(cogview_plugin_floats_v1 *f) { free(f->private_data); }

/* Slot p of a kh x kw window centred at (cy, cx) on a side x side grid: its flat index, or -1. */
static int64_t window_key(int64_t cy, int64_t cx, uint32_t kh, uint32_t kw, uint32_t p, uint64_t side) {
    int64_t ky = cy - kh / 2 + p / kw, kx = cx - kw / 2 + p % kw;
    if (ky < 0 || kx < 0 || ky >= (int64_t)side || kx >= (int64_t)side) return -1;
    return ky * (int64_t)side + kx;
}

static cogview_plugin_error *grid_forward(const cogview_plugin_grid_model *model, const cogview_plugin_grid_input_v1 *in,
                                  cogview_plugin_floats_v1 *out) {
    if (!model || !in || !out || in->struct_size < sizeof(cogview_plugin_grid_input_v1))
        return fail(g_host, COGVIEW_ERR_INVALID_INPUT, "input", "is NULL or too small");
    uint64_t side = in->high_side, n1 = side * side, n0 = in->tokens0_len, vocab = 64;
    if (in->kind != *(const uint32_t *)model || in->tokens1_len != n1 || in->bias0_len != n0 * n0)
        return fail(g_host, COGVIEW_ERR_INVALID_INPUT, "input", "does not fit the model");
    float unmasked = 0;
    for (uint64_t i = 0; i < n0 * n0; i++)
        if (in->bias0[i] == 0.0f) unmasked += 1;
    float *logits = (float *)calloc(n1 * vocab, sizeof(float));
    for (uint64_t q = 0; q < n1; q++) {
        int64_t y = q / side, x = q % side;
        float count = 0, sum = 0;
        if (in->kind == COGVIEW_PLUGIN_GRID_DSR) {
            for (uint32_t p = 0; p < in->cross_kh * in->cross_kw; p++) {
                int64_t k = window_key(y / in->cross_ratio_h, x / in->cross_ratio_w, in->cross_kh,
                                       in->cross_kw, p, in->low_side);
                if (k >= 0) count += 1, sum += in->tokens0[in->low_offset + k];
            }
        } else {
            for (uint64_t k = 0; k < in->visible_len; k++)
                if (in->visible[k]) count += 1, sum += in->tokens0[k];
        }
        for (uint32_t p = 0; p < in->own_kh * in->own_kw; p++) {
            int64_t k = window_key(y, x, in->own_kh, in->own_kw, p, side);
            if (k >= 0) count += 1, sum += in->tokens1[k];
        }
        logits[q * vocab + 0] = count;
        logits[q * vocab + 1] = sum;
        logits[q * vocab + 2] = unmasked;
    }
#ifdef FIXTURE_GRID_NAN
    for (uint64_t i = 0; i < n1 * vocab; i++) logits[i] = NAN;
#endif
#ifdef FIXTURE_GRID_SHORT
    out->rows = n1 - 1;
#else
    out->rows = n1;
#endif
    out->cols = vocab;
    out->data = logits;
    out->release = release_floats;
    out->private_data = logits;
    return NULL;
}

static const cogview_plugin_grid_vtable_v1 grid = {
#ifdef FIXTURE_GRID_V10
    0, 40,
#else
    COGVIEW_PLUGIN_ABI_MINOR, sizeof(cogview_plugin_grid_vtable_v1),
#endif
    grid_load, grid_free, grid_predict_v10, NULL, grid_spec, grid_forward,
};
#define FIXTURE_KINDS (COGVIEW_PLUGIN_KIND_IMAGE_TOKENIZER | COGVIEW_PLUGIN_KIND_GRID)
#define FIXTURE_GRID_VTABLE &grid
#else
#define FIXTURE_KINDS COGVIEW_PLUGIN_KIND_IMAGE_TOKENIZER
#define FIXTURE_GRID_VTABLE NULL
#endif

static const cogview_plugin_descriptor_v1 descriptor = {
    COGVIEW_PLUGIN_ABI_MINOR,
#ifdef FIXTURE_TRUNCATED
    40,
#else
    sizeof(cogview_plugin_descriptor_v1),
#endif
#ifdef FIXTURE_WRONG_MAJOR
    2,
#else
    COGVIEW_PLUGIN_ABI_MAJOR,
#endif
#ifdef FIXTURE_MISSING_VTABLE
    COGVIEW_PLUGIN_KIND_LM | FIXTURE_KINDS,
#else
    FIXTURE_KINDS,
#endif
    "fixture-c",
    "0.0.0",
    "C fixture (" __FILE__ ")",
    score,
    init,
    NULL,
    FIXTURE_GRID_VTABLE,
    &tokenizer,
};

#ifdef FIXTURE_V2_ONLY
COGVIEW_PLUGIN_EXPORT const cogview_plugin_descriptor_v1 *cogview_plugin_v2(void) {
    return &descriptor;
}
#else
COGVIEW_PLUGIN_EXPORT const cogview_plugin_descriptor_v1 *cogview_plugin_v1(void) {
    return &descriptor;
}
#endif
