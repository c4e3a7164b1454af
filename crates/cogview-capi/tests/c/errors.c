/* errors.c: every error path of the C API (tests/c_api.rs runs it, also under AddressSanitizer
 * and LeakSanitizer). Each call must return an error object with the expected code, never crash,
 * and leave out-parameters untouched. Usage: errors MODEL_DIR */
#include "cogview.h"

#include <stdio.h>
#include <string.h>

static int failures = 0;

static void expect(cogview_error *e, int32_t code, const char *what) {
    if (cogview_error_code(e) != code) {
        printf("FAIL %s: expected code %d, got %d (%s)\n", what, code, cogview_error_code(e),
               cogview_error_message(e));
        failures++;
    } else if (e && strlen(cogview_error_message(e)) == 0) {
        printf("FAIL %s: empty message\n", what);
        failures++;
    } else {
        printf("ok   %s: %s\n", what, e ? cogview_error_message(e) : "(success)");
    }
    cogview_error_free(e);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *model_dir = argv[1];
    void *const sentinel = (void *)0x1;

    /* freeing NULL is a no-op; NULL errors read as code 0 and "" */
    cogview_error_free(NULL);
    cogview_pipeline_free(NULL);
    cogview_session_free(NULL);
    cogview_images_free(NULL);
    cogview_grid_free(NULL);
    cogview_session_cancel(NULL);
    cogview_session_reset_cancel(NULL);
    if (cogview_error_code(NULL) != 0 || strcmp(cogview_error_message(NULL), "") != 0) failures++;
    if (cogview_images_count(NULL) != 0) failures++;
    cogview_grid_view empty = cogview_grid_get(NULL);
    if (empty.ids != NULL || empty.ids_len != 0) failures++;

    /* pipelines */
    cogview_pipeline *pipeline = (cogview_pipeline *)sentinel;
    cogview_pipeline_params pp = cogview_pipeline_default_params();
    if (pp.struct_size != sizeof pp || pp.log_level != COGVIEW_LOG_WARN || pp.model_dir) {
        printf("FAIL pipeline default params\n");
        failures++;
    }
    expect(cogview_pipeline_new(NULL, &pipeline), COGVIEW_ERR_INVALID_ARGUMENT, "NULL params");
    expect(cogview_pipeline_new(&pp, NULL), COGVIEW_ERR_INVALID_ARGUMENT, "NULL out");
    cogview_pipeline_params raw;
    memset(&raw, 0, sizeof raw);
    expect(cogview_pipeline_new(&raw, &pipeline), COGVIEW_ERR_INVALID_ARGUMENT, "params not initialised");
    pp.model_dir = "/nonexistent/cogview-model";
    expect(cogview_pipeline_new(&pp, &pipeline), COGVIEW_ERR_CONFIG, "missing model folder");
    pp.model_dir = "\xff\xfe";
    expect(cogview_pipeline_new(&pp, &pipeline), COGVIEW_ERR_INVALID_ARGUMENT, "model_dir not UTF-8");
    pp.model_dir = model_dir;
    pp.style = "cubism";
    expect(cogview_pipeline_new(&pp, &pipeline), COGVIEW_ERR_INVALID_INPUT, "unknown style");
    pp.style = NULL;
    pp.dtype = "f64";
    expect(cogview_pipeline_new(&pp, &pipeline), COGVIEW_ERR_INVALID_INPUT, "unknown dtype");
    pp.dtype = NULL;
    pp.config_path = "/nonexistent/pipeline.toml";
    expect(cogview_pipeline_new(&pp, &pipeline), COGVIEW_ERR_IO, "missing config file");
    pp.config_path = NULL;
    if (pipeline != (cogview_pipeline *)sentinel) { printf("FAIL out-parameter written on error\n"); failures++; }
    expect(cogview_pipeline_new(&pp, &pipeline), 0, "valid pipeline");
    uint32_t low = 0, high = 0, side = 0;
    expect(cogview_pipeline_geometry(pipeline, &low, &high, NULL), COGVIEW_ERR_INVALID_ARGUMENT, "geometry NULL out");
    expect(cogview_pipeline_geometry(NULL, &low, &high, &side), COGVIEW_ERR_INVALID_ARGUMENT, "geometry NULL pipeline");
    expect(cogview_pipeline_geometry(pipeline, &low, &high, &side), 0, "geometry");

    /* sessions */
    cogview_session *session = NULL;
    expect(cogview_session_new(NULL, NULL, &session), COGVIEW_ERR_INVALID_ARGUMENT, "session of NULL pipeline");
    cogview_session_params sp = cogview_session_default_params();
    if (sp.struct_size != sizeof sp || sp.progress_callback) { printf("FAIL session default params\n"); failures++; }
    memset(&sp, 0, sizeof sp);
    expect(cogview_session_new(pipeline, &sp, &session), COGVIEW_ERR_INVALID_ARGUMENT, "session params not initialised");
    expect(cogview_session_new(pipeline, NULL, &session), 0, "session");

    /* generation */
    cogview_images *images = (cogview_images *)sentinel;
    cogview_generate_params gp = cogview_generate_default_params();
    if (gp.struct_size != sizeof gp || gp.num_images != 1) { printf("FAIL generate default params\n"); failures++; }
    expect(cogview_generate(session, &gp, &images), COGVIEW_ERR_INVALID_ARGUMENT, "NULL prompt");
    gp.prompt = "\xc3\x28";
    expect(cogview_generate(session, &gp, &images), COGVIEW_ERR_INVALID_ARGUMENT, "prompt not UTF-8");
    gp.prompt = "";
    expect(cogview_generate(session, &gp, &images), COGVIEW_ERR_INVALID_INPUT, "empty prompt");
    static char long_prompt[4000];
    for (size_t i = 0; i + 4 < sizeof long_prompt; i += 4) memcpy(long_prompt + i, "cat ", 4);
    gp.prompt = long_prompt;
    expect(cogview_generate(session, &gp, &images), COGVIEW_ERR_TEXT_TOO_LONG, "prompt too long");
    gp.prompt = "a cat";
    gp.num_images = 0;
    expect(cogview_generate(session, &gp, &images), COGVIEW_ERR_INVALID_ARGUMENT, "zero images");
    gp.num_images = 1;
    expect(cogview_generate(NULL, &gp, &images), COGVIEW_ERR_INVALID_ARGUMENT, "NULL session");
    expect(cogview_generate(session, &gp, NULL), COGVIEW_ERR_INVALID_ARGUMENT, "NULL images out");
    if (images != (cogview_images *)sentinel) { printf("FAIL images written on error\n"); failures++; }
    cogview_session_cancel(session);
    expect(cogview_generate(session, &gp, &images), COGVIEW_ERR_CANCELLED, "cancelled session");
    cogview_session_reset_cancel(session);
    gp.only_first_stage = 1;
    expect(cogview_generate(session, &gp, &images), 0, "generate (stage 1)");

    /* results */
    cogview_image_view view;
    expect(cogview_images_get(images, 1, &view), COGVIEW_ERR_INVALID_ARGUMENT, "index out of range");
    expect(cogview_images_get(images, 0, NULL), COGVIEW_ERR_INVALID_ARGUMENT, "NULL view");
    expect(cogview_images_get(images, 0, &view), 0, "get image 0");
    if (view.high_res.ids != NULL) { printf("FAIL stage-1 result has a high-res grid\n"); failures++; }
    expect(cogview_image_save_png(&view, "/nonexistent/dir/x.png"), COGVIEW_ERR_IO, "unwritable PNG path");
    expect(cogview_image_save_png(&view, NULL), COGVIEW_ERR_INVALID_ARGUMENT, "NULL PNG path");

    /* super-resolution and tokens */
    cogview_grid_view bad = view.low_res;
    bad.ids_len -= 1;
    expect(cogview_super_resolve(session, "a cat", &bad, 1, 0, &images), COGVIEW_ERR_INVALID_ARGUMENT, "grid with a wrong length");
    expect(cogview_super_resolve(session, "a cat", &view.low_res, 0, 0, &images), COGVIEW_ERR_INVALID_ARGUMENT, "zero grids");
    expect(cogview_super_resolve(session, "a cat", NULL, 1, 0, &images), COGVIEW_ERR_INVALID_ARGUMENT, "NULL grids");
    cogview_grid_view small = view.low_res;
    small.height = 1;
    small.width = (uint32_t)small.ids_len;
    expect(cogview_super_resolve(session, "a cat", &small, 1, 0, &images), COGVIEW_ERR_INVALID_INPUT, "grid of the wrong shape");
    uint32_t out_of_vocab[4] = {1, 2, 3, 4000000000u};
    cogview_grid_view oov = {2, 2, out_of_vocab, 4};
    cogview_images *decoded = NULL;
    expect(cogview_detokenize(session, &oov, &decoded), COGVIEW_ERR_TOKEN_OUT_OF_VOCAB, "token id out of range");
    expect(cogview_detokenize(session, &view.low_res, &decoded), 0, "detokenize");
    cogview_images_free(decoded);

    cogview_grid *grid = NULL;
    unsigned char pixels[16 * 16 * 3] = {0};
    expect(cogview_tokenize_image(session, pixels, sizeof pixels - 1, 16, 16, &grid), COGVIEW_ERR_INVALID_ARGUMENT, "pixel buffer too short");
    expect(cogview_tokenize_image(session, NULL, sizeof pixels, 16, 16, &grid), COGVIEW_ERR_INVALID_ARGUMENT, "NULL pixels");
    expect(cogview_tokenize_image(session, pixels, 0, 0, 16, &grid), COGVIEW_ERR_INVALID_ARGUMENT, "zero width");
    expect(cogview_tokenize_image(session, pixels, sizeof pixels, 16, 16, &grid), 0, "tokenize");
    cogview_grid_view gv = cogview_grid_get(grid);
    if (gv.height != low || gv.width != low || gv.ids_len != (size_t)low * low) { printf("FAIL tokenized grid is %ux%u\n", gv.height, gv.width); failures++; }
    cogview_grid_free(grid);

    /* editing and captions */
    cogview_string_free(NULL);
    cogview_edit_params ep = cogview_edit_default_params();
    if (ep.struct_size != sizeof ep || ep.num_images != 1 || ep.mask || ep.rects) { printf("FAIL edit default params\n"); failures++; }
    cogview_images *edited = (cogview_images *)sentinel;
    ep.prompt = "a cat";
    ep.rgb = pixels;
    ep.rgb_len = sizeof pixels;
    ep.width = 16;
    ep.height = 16;
    expect(cogview_edit(session, &ep, &edited), COGVIEW_ERR_INVALID_ARGUMENT, "edit without a mask or rectangles");
    unsigned char mask[16 * 16] = {0};
    ep.mask = mask;
    ep.mask_len = sizeof mask - 1;
    expect(cogview_edit(session, &ep, &edited), COGVIEW_ERR_INVALID_ARGUMENT, "edit mask of the wrong length");
    ep.mask = NULL;
    ep.mask_len = 0;
    cogview_rect outside = {0, 0, 17, 8, 0};
    ep.rects = &outside;
    ep.rect_count = 1;
    expect(cogview_edit(session, &ep, &edited), COGVIEW_ERR_INVALID_INPUT, "edit rectangle outside the image");
    cogview_rect inverted = {0.5, 0, 0.25, 1, 1};
    ep.rects = &inverted;
    expect(cogview_edit(session, &ep, &edited), COGVIEW_ERR_INVALID_INPUT, "edit rectangle with x1 < x0");
    cogview_rect fraction_px = {0.5, 0, 4, 4, 0};
    ep.rects = &fraction_px;
    expect(cogview_edit(session, &ep, &edited), COGVIEW_ERR_INVALID_ARGUMENT, "edit pixel rectangle with fractions");
    cogview_rect half = {0, 0, 0.5, 0.5, 1};
    ep.rects = &half;
    ep.rgb_len = sizeof pixels - 3;
    expect(cogview_edit(session, &ep, &edited), COGVIEW_ERR_INVALID_ARGUMENT, "edit image buffer too short");
    ep.rgb_len = sizeof pixels;
    ep.num_images = 0;
    expect(cogview_edit(session, &ep, &edited), COGVIEW_ERR_INVALID_ARGUMENT, "edit zero images");
    ep.num_images = 1;
    unsigned char tiny[4 * 4 * 3] = {0};
    ep.rgb = tiny;
    ep.rgb_len = sizeof tiny;
    ep.width = 4;
    ep.height = 4;
    expect(cogview_edit(session, &ep, &edited), COGVIEW_ERR_INVALID_INPUT, "edit an image smaller than one token");
    ep.struct_size = 8;
    expect(cogview_edit(session, &ep, &edited), COGVIEW_ERR_INVALID_ARGUMENT, "edit params not initialised");
    if (edited != (cogview_images *)sentinel) { printf("FAIL edit touched its out-parameter\n"); failures++; }
    double score = 123.0;
    cogview_caption_score_params csp = cogview_caption_score_default_params();
    if (csp.struct_size != sizeof csp || csp.caption || csp.rgb) { printf("FAIL caption score default params\n"); failures++; }
    csp.rgb = pixels;
    csp.rgb_len = sizeof pixels;
    csp.width = 16;
    csp.height = 16;
    expect(cogview_caption_score(session, &csp, &score), COGVIEW_ERR_INVALID_ARGUMENT, "caption score of NULL");
    csp.caption = "a cat";
    expect(cogview_caption_score(session, &csp, NULL), COGVIEW_ERR_INVALID_ARGUMENT, "caption score to NULL");
    expect(cogview_caption_score(session, NULL, &score), COGVIEW_ERR_INVALID_ARGUMENT, "caption score of NULL params");
    csp.rgb_len = sizeof pixels - 1;
    expect(cogview_caption_score(session, &csp, &score), COGVIEW_ERR_INVALID_ARGUMENT, "caption score of a short buffer");
    csp.rgb_len = sizeof pixels;
    csp.struct_size = 4;
    expect(cogview_caption_score(session, &csp, &score), COGVIEW_ERR_INVALID_ARGUMENT, "caption score params not initialised");
    if (score != 123.0) { printf("FAIL caption score touched its out-parameter\n"); failures++; }
    char *caption = (char *)sentinel;
    cogview_caption_params cp = cogview_caption_default_params();
    if (cp.struct_size != sizeof cp || cp.max_tokens != 32 || cp.temperature != 0.0f || cp.top_k != 40 || cp.seed != 0) {
        printf("FAIL caption default params\n");
        failures++;
    }
    cp.rgb = pixels;
    cp.rgb_len = sizeof pixels;
    cp.width = 16;
    cp.height = 16;
    cp.max_tokens = 0;
    expect(cogview_caption(session, &cp, &caption), COGVIEW_ERR_INVALID_ARGUMENT, "caption of zero tokens");
    cp.max_tokens = 8;
    cp.temperature = -1.0f;
    expect(cogview_caption(session, &cp, &caption), COGVIEW_ERR_INVALID_ARGUMENT, "caption with a negative temperature");
    cp.temperature = 0.0f;
    cp.rgb = NULL;
    expect(cogview_caption(session, &cp, &caption), COGVIEW_ERR_INVALID_ARGUMENT, "caption of NULL pixels");
    cp.rgb = pixels;
    expect(cogview_caption(session, NULL, &caption), COGVIEW_ERR_INVALID_ARGUMENT, "caption of NULL params");
    expect(cogview_caption(session, &cp, NULL), COGVIEW_ERR_INVALID_ARGUMENT, "caption to NULL");
    cp.struct_size = 0;
    expect(cogview_caption(session, &cp, &caption), COGVIEW_ERR_INVALID_ARGUMENT, "caption params not initialised");
    if (caption != (char *)sentinel) { printf("FAIL caption touched its out-parameter\n"); failures++; }

    cogview_images_free(images);
    cogview_session_free(session);
    cogview_pipeline_free(pipeline);
    printf("%d failure(s)\n", failures);
    return failures == 0 ? 0 : 1;
}
