/*
 * cogview_plugin.h: the C ABI between cogview and its backend plugins, version 1.1.
 *
 * A plugin is a shared library that exports one function:
 *
 *     const cogview_plugin_descriptor_v1 *cogview_plugin_v1(void);
 *
 * It returns a static descriptor and does nothing else (no allocation, no device work). The host
 * (the cogview library or command) then calls score() to ask whether the plugin can run on a
 * device, init() once with the host's logger and error constructor, and the load/compute functions
 * of the vtables. Rust plugins get all of this from the `cogview-plugin-abi` crate
 * (`export_plugin!`); this header is for plugins written in C or C++, and is the reference.
 *
 * Rules (docs/plugins.md explains them):
 *  - Every struct starts with struct_version (the ABI minor version its writer was built with) and
 *    struct_size (sizeof as its writer saw it). A reader refuses sizes below the struct's size in
 *    the first version that had it (v1.0 for all but the two grid structs of v1.1) and reads only
 *    min(struct_size, its own sizeof) bytes; fields it does not have read as 0 / NULL. Fields are
 *    only ever appended. A breaking change is a new major version with a new entry symbol
 *    (cogview_plugin_v2), so an old host never calls a new plugin by mistake.
 *  - v1.1: DSR / ItersR models (cogview_plugin_grid_vtable_v1) gained spec() and forward(). The host reads
 *    the model's geometry with spec() once after load, assembles each pass's input (the padded
 *    text, positions, attention bias, local windows: cogview_plugin_grid_input_v1) and calls forward(); the
 *    plugin only runs the network. A v1.1 host requires both and no longer calls predict(), which
 *    a v1.1 plugin may still fill for v1.0 hosts.
 *  - Only plain C data crosses: integers, float, UTF-8 text as pointer + length (not
 *    NUL-terminated, except the descriptor's strings), token ids, pixels, TOML text.
 *  - Every fallible function returns a cogview_plugin_error*, NULL meaning success. Errors are
 *    created only with host->error_new, with a code of cogview_error.h (the table the C API
 *    shares), and are owned (and freed) by the host. On error, out-parameters are left untouched.
 *  - Handles are created and freed by the plugin; *_free accepts NULL. Outputs the plugin
 *    allocates (cogview_plugin_floats_v1) carry their own release function, which the host calls
 *    once.
 *  - Nothing may unwind or throw across these functions: catch C++ exceptions (and Rust panics)
 *    and return a COGVIEW_ERR_PANIC error instead.
 *  - The host never unloads a plugin library.
 *  - Threading: model handles (cogview_plugin_lm, cogview_plugin_grid_model,
 *    cogview_plugin_image_tokenizer) accept calls from several threads at once; a
 *    cogview_plugin_lm_session is used by one thread at a time but may move between threads;
 *    host->log may be called from any thread.
 *  - Names: as in cogview.h, types and functions are lower_snake_case (every type here starts
 *    with cogview_plugin_ and ends with its version, _v1), macros are COGVIEW_PLUGIN_*, and the
 *    error codes are the shared COGVIEW_ERR_*. Before 0.2 these types were spelt CogviewPluginV1,
 *    CogviewHostV1, ... and the codes COGVIEW_PLUGIN_ERR_*: the names changed, the binary
 *    interface did not (same values, same layout, same entry symbol).
 *  - Only 64-bit targets are supported; the offsets below are checked at compile time, here and in
 *    the Rust definitions (crates/cogview-plugin-abi/src/ffi.rs).
 */
#ifndef COGVIEW_PLUGIN_H
#define COGVIEW_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "cogview_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define COGVIEW_PLUGIN_ABI_MAJOR 1
#define COGVIEW_PLUGIN_ABI_MINOR 1

/* Error codes (COGVIEW_ERR_*) carried by cogview_plugin_error objects: cogview_error.h. */

/* Log levels. */
#define COGVIEW_PLUGIN_LOG_ERROR 1
#define COGVIEW_PLUGIN_LOG_WARN 2
#define COGVIEW_PLUGIN_LOG_INFO 3
#define COGVIEW_PLUGIN_LOG_DEBUG 4
#define COGVIEW_PLUGIN_LOG_TRACE 5

#define COGVIEW_PLUGIN_DEVICE_CPU 0
#define COGVIEW_PLUGIN_DEVICE_CUDA 1

#define COGVIEW_PLUGIN_DTYPE_F32 0
#define COGVIEW_PLUGIN_DTYPE_F16 1
#define COGVIEW_PLUGIN_DTYPE_BF16 2

/* cogview_plugin_descriptor_v1.model_kinds bits; each set bit needs its vtable. */
#define COGVIEW_PLUGIN_KIND_LM 1u
#define COGVIEW_PLUGIN_KIND_GRID 2u
#define COGVIEW_PLUGIN_KIND_IMAGE_TOKENIZER 4u

/* cogview_plugin_grid_spec_v1.kind and cogview_plugin_grid_input_v1.kind (v1.1). */
#define COGVIEW_PLUGIN_GRID_DSR 1u
#define COGVIEW_PLUGIN_GRID_ITERSR 2u

typedef struct cogview_plugin_error cogview_plugin_error; /* host-owned */
typedef struct cogview_plugin_lm cogview_plugin_lm;       /* plugin-owned handles */
typedef struct cogview_plugin_lm_session cogview_plugin_lm_session;
typedef struct cogview_plugin_grid_model cogview_plugin_grid_model;
typedef struct cogview_plugin_image_tokenizer cogview_plugin_image_tokenizer;

/* What the host gives the plugin; valid for the rest of the process (the plugin may keep it). */
typedef struct cogview_plugin_host_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    void *user_data;                /* pass back to both callbacks */
    int32_t max_log_level;          /* skip messages finer than this */
    uint32_t reserved0;
    void (*log)(void *user_data, int32_t level, const char *target, size_t target_len,
                const char *msg, size_t msg_len);            /* thread-safe */
    cogview_plugin_error *(*error_new)(void *user_data, int32_t code, const char *subject,
                                       size_t subject_len, const char *msg,
                                       size_t msg_len);      /* never NULL */
} cogview_plugin_host_v1;

/* Progress and cancellation of one call; borrowed for that call only. */
typedef struct cogview_plugin_hooks_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    void *user_data;
    void (*progress)(void *user_data, const char *stage, size_t stage_len, uint64_t step,
                     uint64_t total);                        /* may be NULL */
    int32_t (*is_cancelled)(void *user_data);                /* may be NULL; nonzero: stop */
} cogview_plugin_hooks_v1;

typedef struct cogview_plugin_load_params_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    const char *path;               /* the checkpoint, UTF-8 */
    size_t path_len;
    int32_t device_kind;            /* COGVIEW_PLUGIN_DEVICE_* */
    int32_t device_index;
    int32_t dtype;                  /* COGVIEW_PLUGIN_DTYPE_* */
    uint32_t num_threads;           /* the plugin's own pool; 0: its default */
    const char *options_toml;       /* the stage's options table; NULL when the length is 0 */
    size_t options_toml_len;
    const cogview_plugin_hooks_v1 *hooks; /* may be NULL */
} cogview_plugin_load_params_v1;

/* A rows x cols float matrix the plugin allocated; the host calls release once when done. */
typedef struct cogview_plugin_floats_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    uint64_t rows;
    uint64_t cols;
    const float *data;
    void (*release)(struct cogview_plugin_floats_v1 *self); /* may be NULL */
    void *private_data;
} cogview_plugin_floats_v1;

typedef struct cogview_plugin_lm_spec_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    uint64_t vocab_size;            /* rows of the word embedding */
    uint64_t max_positions;
    uint64_t image_vocab_size;      /* ids 0..image_vocab_size are image codes */
    uint32_t start_of_image_id;
    uint32_t reserved0;
} cogview_plugin_lm_spec_v1;

/* n new tokens for each of the session's batch rows. */
typedef struct cogview_plugin_lm_input_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    const uint32_t *tokens;         /* [batch, n] */
    size_t tokens_len;
    const uint32_t *positions;      /* [n] */
    size_t positions_len;
    const float *bias;              /* [n, cached + n], additive; -inf = masked */
    size_t bias_len;
    uint32_t logits_all;            /* 0: last position per row [batch, vocab]; 1: [batch*n, vocab] */
    uint32_t reserved0;
    uint64_t logits_vocab;          /* logits over the first logits_vocab ids */
} cogview_plugin_lm_input_v1;

typedef struct cogview_plugin_token_grid_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    uint64_t height;
    uint64_t width;
    const uint32_t *ids;            /* row-major, height * width */
    size_t ids_len;
} cogview_plugin_token_grid_v1;

typedef struct cogview_plugin_image_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    uint64_t width;
    uint64_t height;
    const uint8_t *rgb;             /* row-major RGB, width * height * 3 */
    size_t rgb_len;
} cogview_plugin_image_v1;

typedef struct cogview_plugin_lm_vtable_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    cogview_plugin_error *(*load)(const cogview_plugin_load_params_v1 *params,
                                  cogview_plugin_lm **out);
    void (*free)(cogview_plugin_lm *lm); /* accepts NULL; sessions keep their model alive */
    cogview_plugin_error *(*spec)(const cogview_plugin_lm *lm, cogview_plugin_lm_spec_v1 *out);
    cogview_plugin_error *(*session_new)(const cogview_plugin_lm *lm, uint64_t batch,
                                         uint64_t capacity, cogview_plugin_lm_session **out);
    void (*session_free)(cogview_plugin_lm_session *session); /* accepts NULL */
    cogview_plugin_error *(*forward)(cogview_plugin_lm_session *session,
                                     const cogview_plugin_lm_input_v1 *input,
                                     cogview_plugin_floats_v1 *out);
} cogview_plugin_lm_vtable_v1;

/* A DSR / ItersR model's geometry, from which the host assembles its input (v1.1). */
typedef struct cogview_plugin_grid_spec_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    uint32_t kind;                  /* COGVIEW_PLUGIN_GRID_DSR or COGVIEW_PLUGIN_GRID_ITERSR */
    uint32_t start_of_image_id;     /* DSR's high-resolution placeholder, ItersR's mask id */
    uint64_t text_slots;            /* text slots at the start of level 0 (DSR 96, ItersR 16) */
    uint64_t low_side;              /* DSR: the low-resolution grid's side (20); ItersR: 0 */
    uint64_t high_side;             /* the high-resolution grid's side (60) */
    uint64_t kernel_size;           /* the own window is (2k-1) x k */
    uint64_t kernel_size2;          /* DSR's cross-resolution window is k2 x k2 */
    uint64_t vocab_size;            /* rows of the word embedding */
    uint64_t image_vocab_size;      /* logits cover ids 0..image_vocab_size */
    uint64_t max_positions;         /* rows of the position embedding */
} cogview_plugin_grid_spec_v1;

/* One DSR / ItersR pass as the host assembled it (v1.1). Level 0 attends densely with bias0.
 * Each level-1 cell (y, x) attends, under one softmax, to its own centred own_kh x own_kw window of
 * level 1 and to level-0 keys: DSR the cross_kh x cross_kw window centred at
 * (y / cross_ratio_h, x / cross_ratio_w) of the low_side x low_side grid stored in level-0 rows
 * low_offset..; ItersR every level-0 row whose visible flag is nonzero. Window slot p (raster
 * order) of a kh x kw window centred at (cy, cx) is (cy - kh/2 + p/kw, cx - kw/2 + p%kw); slots
 * outside a grid get no weight. */
typedef struct cogview_plugin_grid_input_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    uint32_t kind;                  /* COGVIEW_PLUGIN_GRID_*: which level-0 keys level 1 sees */
    uint32_t reserved0;
    const uint32_t *tokens0;        /* level 0, [n0]: the left-padded text, then DSR's low grid */
    size_t tokens0_len;
    const uint32_t *positions0;     /* [n0] */
    size_t positions0_len;
    const float *bias0;             /* [n0, n0], additive; -inf = masked */
    size_t bias0_len;
    const uint32_t *tokens1;        /* level 1, [high_side^2]; positions 0.. of the extra embedding */
    size_t tokens1_len;
    uint64_t high_side;
    uint32_t own_kh;                /* each level-1 cell's window over its own grid */
    uint32_t own_kw;
    uint64_t low_offset;            /* DSR: the level-0 row of low-resolution cell 0 */
    uint64_t low_side;              /* DSR: the low-resolution grid's side; ItersR: 0 */
    uint32_t cross_kh;              /* DSR: the window over the low-resolution grid */
    uint32_t cross_kw;
    uint32_t cross_ratio_h;         /* DSR: high_side / low_side */
    uint32_t cross_ratio_w;
    const uint32_t *visible;        /* ItersR: [n0] flags, nonzero = seen by level 1; DSR: NULL */
    size_t visible_len;
} cogview_plugin_grid_input_v1;

/* DSR / ItersR: logits over the image vocabulary for every cell of the output grid. */
typedef struct cogview_plugin_grid_vtable_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    cogview_plugin_error *(*load)(const cogview_plugin_load_params_v1 *params,
                                  cogview_plugin_grid_model **out);
    void (*free)(cogview_plugin_grid_model *model); /* accepts NULL */
    /* v1.0's call, which assembles the input in the plugin; v1.1 hosts call spec() and
     * forward() instead. May be NULL in a v1.1 plugin (then v1.0 hosts cannot use its grid
     * models). */
    cogview_plugin_error *(*predict)(const cogview_plugin_grid_model *model, const uint32_t *text,
                                     size_t text_len, const cogview_plugin_token_grid_v1 *grid,
                                     cogview_plugin_floats_v1 *out);
    /* may be NULL: drop weights until the next predict */
    void (*release)(const cogview_plugin_grid_model *model);
    /* v1.1, required by v1.1 hosts: the model's geometry, read once after load */
    cogview_plugin_error *(*spec)(const cogview_plugin_grid_model *model,
                                  cogview_plugin_grid_spec_v1 *out);
    /* v1.1: logits [high_side^2, image_vocab_size] of an input the host assembled */
    cogview_plugin_error *(*forward)(const cogview_plugin_grid_model *model,
                                     const cogview_plugin_grid_input_v1 *input,
                                     cogview_plugin_floats_v1 *out);
} cogview_plugin_grid_vtable_v1;

typedef struct cogview_plugin_image_tokenizer_vtable_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    cogview_plugin_error *(*load)(const cogview_plugin_load_params_v1 *params,
                                  cogview_plugin_image_tokenizer **out);
    void (*free)(cogview_plugin_image_tokenizer *model); /* accepts NULL */
    /* writes exactly (height/factor)*(width/factor) ids; factor is 4, 8 or 16 */
    cogview_plugin_error *(*encode)(const cogview_plugin_image_tokenizer *model,
                                    const cogview_plugin_image_v1 *image, uint32_t factor,
                                    uint32_t *ids, size_t ids_len);
    /* writes exactly (height*factor)*(width*factor)*3 bytes */
    cogview_plugin_error *(*decode)(const cogview_plugin_image_tokenizer *model,
                                    const cogview_plugin_token_grid_v1 *grid, uint32_t factor,
                                    uint8_t *rgb, size_t rgb_len);
} cogview_plugin_image_tokenizer_vtable_v1;

/* What cogview_plugin_v1() returns. */
typedef struct cogview_plugin_descriptor_v1 {
    uint32_t struct_version;
    uint32_t struct_size;
    uint32_t abi_major;             /* COGVIEW_PLUGIN_ABI_MAJOR */
    uint32_t model_kinds;           /* COGVIEW_PLUGIN_KIND_* bits */
    const char *name;               /* the backend name stages select; [A-Za-z0-9_-]+ */
    const char *version;
    const char *build_info;         /* may be NULL */
    /* > 0: usable on this device (higher wins); <= 0: not, with the reason in *why_not
     * (COGVIEW_ERR_UNSUPPORTED). Cheap: loads nothing. May be called before init. */
    int32_t (*score)(const cogview_plugin_host_v1 *host, int32_t device_kind, int32_t device_index,
                     cogview_plugin_error **why_not);
    cogview_plugin_error *(*init)(const cogview_plugin_host_v1 *host); /* once, before any load */
    const cogview_plugin_lm_vtable_v1 *lm;
    const cogview_plugin_grid_vtable_v1 *grid;
    const cogview_plugin_image_tokenizer_vtable_v1 *image_tokenizer;
} cogview_plugin_descriptor_v1;

typedef const cogview_plugin_descriptor_v1 *(*cogview_plugin_entry_v1)(void);

#if defined(_WIN32)
#define COGVIEW_PLUGIN_EXPORT __declspec(dllexport)
#else
#define COGVIEW_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* The v1.1 layout (64-bit targets). */
#if defined(__cplusplus)
#define COGVIEW_PLUGIN_STATIC_ASSERT static_assert
#else
#define COGVIEW_PLUGIN_STATIC_ASSERT _Static_assert
#endif
#define COGVIEW_PLUGIN_AT(T, f, o) COGVIEW_PLUGIN_STATIC_ASSERT(offsetof(T, f) == o, #T "." #f " moved")
#define COGVIEW_PLUGIN_SIZE(T, s) COGVIEW_PLUGIN_STATIC_ASSERT(sizeof(T) == s, #T " changed size")
COGVIEW_PLUGIN_SIZE(cogview_plugin_host_v1, 40);
COGVIEW_PLUGIN_AT(cogview_plugin_host_v1, user_data, 8);
COGVIEW_PLUGIN_AT(cogview_plugin_host_v1, max_log_level, 16);
COGVIEW_PLUGIN_AT(cogview_plugin_host_v1, log, 24);
COGVIEW_PLUGIN_AT(cogview_plugin_host_v1, error_new, 32);
COGVIEW_PLUGIN_SIZE(cogview_plugin_hooks_v1, 32);
COGVIEW_PLUGIN_AT(cogview_plugin_hooks_v1, progress, 16);
COGVIEW_PLUGIN_AT(cogview_plugin_hooks_v1, is_cancelled, 24);
COGVIEW_PLUGIN_SIZE(cogview_plugin_load_params_v1, 64);
COGVIEW_PLUGIN_AT(cogview_plugin_load_params_v1, device_kind, 24);
COGVIEW_PLUGIN_AT(cogview_plugin_load_params_v1, dtype, 32);
COGVIEW_PLUGIN_AT(cogview_plugin_load_params_v1, num_threads, 36);
COGVIEW_PLUGIN_AT(cogview_plugin_load_params_v1, options_toml, 40);
COGVIEW_PLUGIN_AT(cogview_plugin_load_params_v1, hooks, 56);
COGVIEW_PLUGIN_SIZE(cogview_plugin_floats_v1, 48);
COGVIEW_PLUGIN_AT(cogview_plugin_floats_v1, data, 24);
COGVIEW_PLUGIN_AT(cogview_plugin_floats_v1, release, 32);
COGVIEW_PLUGIN_AT(cogview_plugin_floats_v1, private_data, 40);
COGVIEW_PLUGIN_SIZE(cogview_plugin_lm_spec_v1, 40);
COGVIEW_PLUGIN_AT(cogview_plugin_lm_spec_v1, start_of_image_id, 32);
COGVIEW_PLUGIN_SIZE(cogview_plugin_lm_input_v1, 72);
COGVIEW_PLUGIN_AT(cogview_plugin_lm_input_v1, bias, 40);
COGVIEW_PLUGIN_AT(cogview_plugin_lm_input_v1, logits_all, 56);
COGVIEW_PLUGIN_AT(cogview_plugin_lm_input_v1, logits_vocab, 64);
COGVIEW_PLUGIN_SIZE(cogview_plugin_token_grid_v1, 40);
COGVIEW_PLUGIN_AT(cogview_plugin_token_grid_v1, ids, 24);
COGVIEW_PLUGIN_SIZE(cogview_plugin_image_v1, 40);
COGVIEW_PLUGIN_AT(cogview_plugin_image_v1, rgb, 24);
COGVIEW_PLUGIN_SIZE(cogview_plugin_lm_vtable_v1, 56);
COGVIEW_PLUGIN_AT(cogview_plugin_lm_vtable_v1, forward, 48);
COGVIEW_PLUGIN_SIZE(cogview_plugin_grid_vtable_v1, 56);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_vtable_v1, release, 32);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_vtable_v1, spec, 40);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_vtable_v1, forward, 48);
COGVIEW_PLUGIN_SIZE(cogview_plugin_grid_spec_v1, 80);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_spec_v1, kind, 8);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_spec_v1, start_of_image_id, 12);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_spec_v1, text_slots, 16);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_spec_v1, high_side, 32);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_spec_v1, max_positions, 72);
COGVIEW_PLUGIN_SIZE(cogview_plugin_grid_input_v1, 144);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, kind, 8);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, tokens0, 16);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, positions0, 32);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, bias0, 48);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, tokens1, 64);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, high_side, 80);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, own_kh, 88);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, low_offset, 96);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, low_side, 104);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, cross_kh, 112);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, cross_ratio_h, 120);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, visible, 128);
COGVIEW_PLUGIN_AT(cogview_plugin_grid_input_v1, visible_len, 136);
COGVIEW_PLUGIN_SIZE(cogview_plugin_image_tokenizer_vtable_v1, 40);
COGVIEW_PLUGIN_AT(cogview_plugin_image_tokenizer_vtable_v1, decode, 32);
COGVIEW_PLUGIN_SIZE(cogview_plugin_descriptor_v1, 80);
COGVIEW_PLUGIN_AT(cogview_plugin_descriptor_v1, abi_major, 8);
COGVIEW_PLUGIN_AT(cogview_plugin_descriptor_v1, name, 16);
COGVIEW_PLUGIN_AT(cogview_plugin_descriptor_v1, score, 40);
COGVIEW_PLUGIN_AT(cogview_plugin_descriptor_v1, init, 48);
COGVIEW_PLUGIN_AT(cogview_plugin_descriptor_v1, lm, 56);
COGVIEW_PLUGIN_AT(cogview_plugin_descriptor_v1, image_tokenizer, 72);
#undef COGVIEW_PLUGIN_AT
#undef COGVIEW_PLUGIN_SIZE

#ifdef __cplusplus
}
#endif

#endif /* COGVIEW_PLUGIN_H */
