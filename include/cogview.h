/*
 * cogview.h: the C API of cogview (CogView2-class text-to-image generation).
 *
 * Build: `cargo build --release -p cogview-capi` gives target/release/libcogview.so (shared) and
 * target/release/libcogview.a (static; link it with -lpthread -ldl -lm). docs/c-api.md has the
 * details and a complete example.
 *
 * LINKING
 *   Define COGVIEW_SHARED when linking the shared library (on Windows it makes the declarations
 *   dllimport; elsewhere it marks them with default visibility). Leave it undefined for the
 *   static library: the declarations are then plain. COGVIEW_BUILD is for building the library
 *   itself as a DLL from C (the Rust build exports its symbols on its own).
 *
 * OBJECTS AND OWNERSHIP
 *   cogview_pipeline  The loaded models: read-only after cogview_pipeline_new, shared by every
 *                     session, usable from many threads at once. Freeing it while sessions exist
 *                     is allowed: the models stay in memory until the last session is freed.
 *   cogview_session   Per-run state: progress and log callbacks and a cancellation flag. Use a
 *                     session from one thread at a time, except cogview_session_cancel, which may
 *                     be called from any thread while the session exists.
 *   cogview_images    Results (pixels and token grids), owned by the library until
 *                     cogview_images_free; views into them stay valid until then.
 *   cogview_grid      A token grid the library made (cogview_tokenize_image).
 *   cogview_error     What went wrong: a code and a message. Every fallible function returns
 *                     cogview_error* — NULL means success — and leaves its out-parameters
 *                     untouched on error. Free errors with cogview_error_free.
 *   Every *_new / result has its *_free, and every *_free accepts NULL.
 *
 * PARAMETERS
 *   Every call that takes more than a handful of values takes a params struct, obtained from its
 *   cogview_<call>_default_params() (which sets struct_size and every default) before fields are
 *   set:
 *       cogview_generate_params p = cogview_generate_default_params();
 *       p.prompt = "a red circle";
 *   A struct whose struct_size is not set is refused. Strings are NUL-terminated UTF-8; invalid
 *   UTF-8, NULL where a value is required and zero counts are COGVIEW_ERR_INVALID_ARGUMENT, never
 *   a crash.
 *
 * NAMES
 *   Types and functions are lower_snake_case with the cogview_ prefix, macros COGVIEW_*; the same
 *   style as the plugin ABI's header (cogview_plugin.h). Error codes (COGVIEW_ERR_*) are the
 *   table both headers share, cogview_error.h.
 *
 * CALLBACKS
 *   Callbacks belong to a pipeline (log) or a session (progress, log), never to the process, and
 *   each comes with its own user_data. They are called on the thread that called into cogview.
 *   A progress callback that returns false cancels the run (COGVIEW_ERR_CANCELLED).
 *
 * No Rust panic crosses this API: an internal bug is reported as COGVIEW_ERR_PANIC.
 */
#ifndef COGVIEW_H
#define COGVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cogview_error.h"

#ifdef COGVIEW_SHARED
#    if defined(_WIN32) && !defined(__MINGW32__)
#        ifdef COGVIEW_BUILD
#            define COGVIEW_API __declspec(dllexport)
#        else
#            define COGVIEW_API __declspec(dllimport)
#        endif
#    else
#        define COGVIEW_API __attribute__((visibility("default")))
#    endif
#else
#    define COGVIEW_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define COGVIEW_VERSION_MAJOR 0
#define COGVIEW_VERSION_MINOR 1
#define COGVIEW_VERSION_PATCH 0
/* Raised whenever this header changes incompatibly. 2: the error codes follow cogview_error.h;
 * params structs come from cogview_*_default_params(); the caption calls take params structs. */
#define COGVIEW_API_VERSION 2

/* The library's version ("0.1.0"); a static string. */
COGVIEW_API const char *cogview_version(void);
/* The COGVIEW_API_VERSION the library was built with; compare it with the header's. */
COGVIEW_API uint32_t cogview_api_version(void);

/* ---- errors ------------------------------------------------------------------------------ */

/* The codes (COGVIEW_ERR_*) are in cogview_error.h. Calls here return COGVIEW_ERR_INVALID_ARGUMENT
 * for a bad argument (NULL, invalid UTF-8, zero count, unset struct_size), COGVIEW_ERR_PANIC for a
 * bug, and otherwise the code of what went wrong: INVALID_INPUT, TOKEN_OUT_OF_VOCAB and
 * TEXT_TOO_LONG (the caller's input), IO, INVALID_WEIGHTS, CONFIG, BACKEND, PLUGIN, CANCELLED. */

typedef struct cogview_error cogview_error;

/* The error's code (COGVIEW_ERR_*); 0 for NULL. */
COGVIEW_API int32_t cogview_error_code(const cogview_error *error);
/* The message: what was wrong and what to do. NUL-terminated UTF-8 owned by the error; "" for
 * NULL. */
COGVIEW_API const char *cogview_error_message(const cogview_error *error);
COGVIEW_API void cogview_error_free(cogview_error *error);

/* ---- logging and progress ---------------------------------------------------------------- */

#define COGVIEW_LOG_ERROR 1
#define COGVIEW_LOG_WARN 2
#define COGVIEW_LOG_INFO 3
#define COGVIEW_LOG_DEBUG 4
#define COGVIEW_LOG_TRACE 5

/* One log line (NUL-terminated, valid during the call). */
typedef void (*cogview_log_callback)(int32_t level, const char *message, void *user_data);
/* `step` of `total` done in `stage` ("coglm", "dsr", "itersr", "decode"); return false to
 * cancel the run. */
typedef bool (*cogview_progress_callback)(const char *stage, uint64_t step, uint64_t total,
                                          void *user_data);

/* ---- pipelines --------------------------------------------------------------------------- */

typedef struct cogview_pipeline cogview_pipeline;

typedef struct cogview_pipeline_params {
    uint32_t struct_size;             /* set by cogview_pipeline_default_params               */
    const char *config_path;          /* a pipeline file (TOML), or NULL                       */
    const char *model_dir;            /* a folder in the official CogView2 layout, or NULL;
                                         with both NULL: the default model built into the
                                         library                                              */
    const char *style;                /* "none", "mainbody", "photo", ...; NULL: the file's    */
    const char *device;               /* "cpu", "cuda:0"; NULL: the file's                     */
    const char *dtype;                /* "f32", "f16", "bf16"; NULL: the file's                */
    int32_t low_memory;               /* nonzero: hold one stage's weights at a time           */
    uint32_t batch_size;              /* images CogLM draws together; 0: the file's            */
    cogview_log_callback log_callback;/* NULL: no log                                          */
    void *log_user_data;
    int32_t log_level;                /* finest level passed on; default COGVIEW_LOG_WARN      */
} cogview_pipeline_params;

/* No config file, no model folder (the built-in default model), no overrides, log level WARN. */
COGVIEW_API cogview_pipeline_params cogview_pipeline_default_params(void);
/* Reads the configuration, checks every model against the others and loads the weights (all
 * of them, or in low-memory mode each when its stage first runs). Thread-safe. */
COGVIEW_API cogview_error *cogview_pipeline_new(const cogview_pipeline_params *params,
                                                cogview_pipeline **out);
COGVIEW_API void cogview_pipeline_free(cogview_pipeline *pipeline);

/* The stage-1 grid side (20 officially), the super-resolved grid side (60) and the final image
 * side in pixels (480). */
COGVIEW_API cogview_error *cogview_pipeline_geometry(const cogview_pipeline *pipeline,
                                                     uint32_t *low_side, uint32_t *high_side,
                                                     uint32_t *image_side);

/* ---- sessions ---------------------------------------------------------------------------- */

typedef struct cogview_session cogview_session;

typedef struct cogview_session_params {
    uint32_t struct_size;                       /* set by cogview_session_default_params        */
    cogview_progress_callback progress_callback;/* NULL: none                                   */
    void *progress_user_data;
    cogview_log_callback log_callback;          /* NULL: the pipeline's                         */
    void *log_user_data;
    int32_t log_level;                          /* default COGVIEW_LOG_WARN                     */
} cogview_session_params;

COGVIEW_API cogview_session_params cogview_session_default_params(void);
/* `params` may be NULL (no callbacks). */
COGVIEW_API cogview_error *cogview_session_new(cogview_pipeline *pipeline,
                                               const cogview_session_params *params,
                                               cogview_session **out);
COGVIEW_API void cogview_session_free(cogview_session *session);
/* Any thread, any time while the session exists: the running call (or the next one) stops after
 * its current step and returns COGVIEW_ERR_CANCELLED. The flag stays set until
 * cogview_session_reset_cancel. */
COGVIEW_API void cogview_session_cancel(cogview_session *session);
COGVIEW_API void cogview_session_reset_cancel(cogview_session *session);

/* ---- results ----------------------------------------------------------------------------- */

/* A row-major grid of image-token ids: an input, or a view into a result. */
typedef struct cogview_grid_view {
    uint32_t height;
    uint32_t width;
    const uint32_t *ids;              /* height * width ids                                     */
    size_t ids_len;
} cogview_grid_view;

/* One result image; every pointer is owned by its cogview_images. */
typedef struct cogview_image_view {
    uint32_t width;
    uint32_t height;
    const uint8_t *rgb;               /* row-major RGB, width * height * 3 bytes                */
    size_t rgb_len;
    uint64_t seed;                    /* regenerate this image alone with this seed (rerank 1)   */
    cogview_grid_view low_res;        /* the stage-1 grid                                       */
    cogview_grid_view high_res;       /* the super-resolved grid; ids NULL after stage 1 only    */
} cogview_image_view;

typedef struct cogview_images cogview_images;

COGVIEW_API size_t cogview_images_count(const cogview_images *images);
COGVIEW_API cogview_error *cogview_images_get(const cogview_images *images, size_t index,
                                              cogview_image_view *out);
COGVIEW_API void cogview_images_free(cogview_images *images);

/* Writes an image as PNG (written to a temporary name, then renamed). */
COGVIEW_API cogview_error *cogview_image_save_png(const cogview_image_view *image,
                                                  const char *path);

/* ---- generation -------------------------------------------------------------------------- */

typedef struct cogview_generate_params {
    uint32_t struct_size;             /* set by cogview_generate_default_params               */
    const char *prompt;               /* required                                               */
    uint32_t num_images;              /* default 1                                              */
    uint64_t seed;                    /* image i uses seed + i; default 0. A pipeline file with
                                       * [coglm] rerank = K draws K * num_images stage-1
                                       * candidates (seeds seed ..) and keeps the num_images best
                                       * by the inverse-prompt score, best first; each result's
                                       * seed says which candidate it is                         */
    int32_t only_first_stage;         /* nonzero: stop after CogLM (the grid decoded, enlarged) */
} cogview_generate_params;

COGVIEW_API cogview_generate_params cogview_generate_default_params(void);
COGVIEW_API cogview_error *cogview_generate(cogview_session *session,
                                            const cogview_generate_params *params,
                                            cogview_images **out);

/* DSR + ItersR on `count` stage-1 grids (each low_side x low_side), conditioned on `prompt`;
 * grid i uses seed + i. */
COGVIEW_API cogview_error *cogview_super_resolve(cogview_session *session, const char *prompt,
                                                 const cogview_grid_view *grids, size_t count,
                                                 uint64_t seed, cogview_images **out);

/* ---- editing and captions ---------------------------------------------------------------- */

/* A rectangle to regenerate: x0 <= x < x1, y0 <= y < y1 in pixels of the input image, or, with
 * `fractional` nonzero, fractions of its width and height in [0, 1] (CogView2's input_comp.txt
 * columns h0 w0 h1 w1 are y0 x0 y1 x1). */
typedef struct cogview_rect {
    double x0, y0, x1, y1;
    int32_t fractional;
} cogview_rect;

typedef struct cogview_edit_params {
    uint32_t struct_size;             /* set by cogview_edit_default_params                   */
    const char *prompt;               /* required: the text the whole edited image should fit  */
    const uint8_t *rgb;               /* required: the input, row-major RGB                    */
    size_t rgb_len;                   /* width * height * 3                                    */
    uint32_t width, height;
    const uint8_t *mask;              /* width * height bytes, nonzero = regenerate, or NULL   */
    size_t mask_len;
    const cogview_rect *rects;        /* rectangles added to the mask, or NULL                 */
    size_t rect_count;
    uint32_t num_images;              /* default 1                                             */
    uint64_t seed;                    /* image i uses seed + i; default 0                      */
} cogview_edit_params;

COGVIEW_API cogview_edit_params cogview_edit_default_params(void);
/* Text-guided editing (CogView2's completion) with any mask: the input is resized and
 * centre-cropped to the pipeline's square (480 px officially), the square around the mask is
 * regenerated (CogLM fills the masked stage-1 cells, DSR, the input's own tokens put back
 * outside the mask, ItersR inside it), pasted, and the whole image passes once through the
 * image tokenizer. An empty mask returns the prepared input (its image views then have no
 * grids). Each result's low_res is the completed stage-1 grid of the crop. */
COGVIEW_API cogview_error *cogview_edit(cogview_session *session,
                                        const cogview_edit_params *params,
                                        cogview_images **out);

typedef struct cogview_caption_score_params {
    uint32_t struct_size;             /* set by cogview_caption_score_default_params          */
    const uint8_t *rgb;               /* required: the image, row-major RGB (resized and
                                         centre-cropped to the stage-1 size)                   */
    size_t rgb_len;                   /* width * height * 3                                    */
    uint32_t width, height;
    const char *caption;              /* required: the text to score                           */
} cogview_caption_score_params;

COGVIEW_API cogview_caption_score_params cogview_caption_score_default_params(void);
/* CogView2's inverse-prompt score: the mean log-probability per token of `caption` given the
 * image. Higher is a better fit. */
COGVIEW_API cogview_error *cogview_caption_score(cogview_session *session,
                                                 const cogview_caption_score_params *params,
                                                 double *score);

typedef struct cogview_caption_params {
    uint32_t struct_size;             /* set by cogview_caption_default_params                */
    const uint8_t *rgb;               /* required: the image, row-major RGB (resized and
                                         centre-cropped to the stage-1 size)                   */
    size_t rgb_len;                   /* width * height * 3                                    */
    uint32_t width, height;
    uint32_t max_tokens;              /* the longest caption; default 32                       */
    float temperature;                /* 0 (default): the most likely text; > 0: sampled       */
    uint32_t top_k;                   /* with temperature > 0: from the top_k (0: all);
                                         default 40                                            */
    uint64_t seed;                    /* for sampling; default 0                                */
} cogview_caption_params;

COGVIEW_API cogview_caption_params cogview_caption_default_params(void);
/* Writes a caption for an image. *out is a NUL-terminated UTF-8 string; free it with
 * cogview_string_free. */
COGVIEW_API cogview_error *cogview_caption(cogview_session *session,
                                           const cogview_caption_params *params, char **out);
COGVIEW_API void cogview_string_free(char *s);

/* ---- image tokens ------------------------------------------------------------------------ */

typedef struct cogview_grid cogview_grid;

/* Encodes an RGB image (resized and centre-cropped to the stage-1 size) into a stage-1 grid. */
COGVIEW_API cogview_error *cogview_tokenize_image(cogview_session *session, const uint8_t *rgb,
                                                  size_t rgb_len, uint32_t width,
                                                  uint32_t height, cogview_grid **out);
/* A view of the grid, valid until cogview_grid_free; all zeros for NULL. */
COGVIEW_API cogview_grid_view cogview_grid_get(const cogview_grid *grid);
COGVIEW_API void cogview_grid_free(cogview_grid *grid);

/* Decodes a grid (any size) to pixels: one image, 8 pixels per token side. */
COGVIEW_API cogview_error *cogview_detokenize(cogview_session *session,
                                              const cogview_grid_view *grid,
                                              cogview_images **out);

/* The layout the library was built with (64-bit targets); checked in Rust too. */
#if defined(__cplusplus)
static_assert(sizeof(cogview_pipeline_params) == 80, "cogview_pipeline_params layout");
static_assert(sizeof(cogview_session_params) == 48, "cogview_session_params layout");
static_assert(sizeof(cogview_generate_params) == 40, "cogview_generate_params layout");
static_assert(sizeof(cogview_grid_view) == 24, "cogview_grid_view layout");
static_assert(sizeof(cogview_image_view) == 80, "cogview_image_view layout");
static_assert(sizeof(cogview_rect) == 40, "cogview_rect layout");
static_assert(sizeof(cogview_edit_params) == 88, "cogview_edit_params layout");
static_assert(sizeof(cogview_caption_score_params) == 40, "cogview_caption_score_params layout");
static_assert(sizeof(cogview_caption_params) == 56, "cogview_caption_params layout");
#else
_Static_assert(sizeof(cogview_pipeline_params) == 80, "cogview_pipeline_params layout");
_Static_assert(sizeof(cogview_session_params) == 48, "cogview_session_params layout");
_Static_assert(sizeof(cogview_generate_params) == 40, "cogview_generate_params layout");
_Static_assert(sizeof(cogview_grid_view) == 24, "cogview_grid_view layout");
_Static_assert(sizeof(cogview_image_view) == 80, "cogview_image_view layout");
_Static_assert(sizeof(cogview_rect) == 40, "cogview_rect layout");
_Static_assert(sizeof(cogview_edit_params) == 88, "cogview_edit_params layout");
_Static_assert(sizeof(cogview_caption_score_params) == 40, "cogview_caption_score_params layout");
_Static_assert(sizeof(cogview_caption_params) == 56, "cogview_caption_params layout");
#endif

#ifdef __cplusplus
}
#endif

#endif /* COGVIEW_H */
