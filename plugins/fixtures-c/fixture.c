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
 */
#include "cogview_plugin.h"

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
    COGVIEW_PLUGIN_KIND_LM | COGVIEW_PLUGIN_KIND_IMAGE_TOKENIZER,
#else
    COGVIEW_PLUGIN_KIND_IMAGE_TOKENIZER,
#endif
    "fixture-c",
    "0.0.0",
    "C fixture (" __FILE__ ")",
    score,
    init,
    NULL,
    NULL,
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
