/* edit.c: text-guided editing and captions with the cogview C API.
 *
 *   cc -DCOGVIEW_SHARED edit.c -I include -L target/release -lcogview \
 *      -Wl,-rpath,target/release -o edit
 *   ./edit "a large blue square in the center" --seed 7 --out out
 *
 * It draws its own input (a red disc in the middle of a white 192 x 192 picture), regenerates
 * the middle third to fit the prompt with the default model built into the library, saves the
 * input and each result as PNG, writes a caption for the input and scores two captions. */
#include "cogview.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>

/* Creates the output folder if it does not exist yet (one level, like `mkdir`). */
static int make_output_dir(const char *dir) {
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) return 0;
    fprintf(stderr, "cannot create the output folder %s: %s\n", dir, strerror(errno));
    return 1;
}

static int fail(cogview_error *e, const char *what) {
    fprintf(stderr, "%s failed (code %d): %s\n", what, cogview_error_code(e), cogview_error_message(e));
    cogview_error_free(e);
    return 1;
}

enum { SIDE = 192 };

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROMPT [-n N] [--seed S] [--out DIR]\n", argv[0]);
        return 2;
    }
    cogview_edit_params ep = cogview_edit_default_params();
    ep.prompt = argv[1];
    const char *out_dir = "out";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) ep.num_images = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seed")) ep.seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--out")) out_dir = argv[i + 1];
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (make_output_dir(out_dir)) return 1;

    /* The input: a red disc of radius 28 px on white. */
    static uint8_t rgb[SIDE * SIDE * 3];
    for (int y = 0; y < SIDE; y++) {
        for (int x = 0; x < SIDE; x++) {
            int dx = x - SIDE / 2, dy = y - SIDE / 2, in = dx * dx + dy * dy <= 28 * 28;
            uint8_t *p = rgb + (y * SIDE + x) * 3;
            p[0] = in ? 220 : 255;
            p[1] = in ? 40 : 255;
            p[2] = in ? 40 : 255;
        }
    }
    /* Regenerate the middle third, given as fractions of the sides. */
    cogview_rect middle = {1.0 / 3, 1.0 / 3, 2.0 / 3, 2.0 / 3, 1};
    ep.rgb = rgb;
    ep.rgb_len = sizeof rgb;
    ep.width = SIDE;
    ep.height = SIDE;
    ep.rects = &middle;
    ep.rect_count = 1;

    cogview_pipeline_params pp = cogview_pipeline_default_params();
    cogview_pipeline *pipeline = NULL;
    cogview_error *e = cogview_pipeline_new(&pp, &pipeline);
    if (e) return fail(e, "cogview_pipeline_new");
    cogview_session *session = NULL;
    e = cogview_session_new(pipeline, NULL, &session);
    if (e) { cogview_pipeline_free(pipeline); return fail(e, "cogview_session_new"); }

    int status = 0;
    char path[4096];
    cogview_image_view input = {SIDE, SIDE, rgb, sizeof rgb, 0, {0, 0, NULL, 0}, {0, 0, NULL, 0}};
    snprintf(path, sizeof path, "%s/input.png", out_dir);
    e = cogview_image_save_png(&input, path);
    if (e) status = fail(e, "cogview_image_save_png");

    cogview_images *images = NULL;
    if (!status) {
        e = cogview_edit(session, &ep, &images);
        if (e) status = fail(e, "cogview_edit");
    }
    for (size_t i = 0; !status && i < cogview_images_count(images); i++) {
        cogview_image_view image;
        e = cogview_images_get(images, i, &image);
        if (e) { status = fail(e, "cogview_images_get"); break; }
        snprintf(path, sizeof path, "%s/edit-%llu.png", out_dir, (unsigned long long)image.seed);
        e = cogview_image_save_png(&image, path);
        if (e) { status = fail(e, "cogview_image_save_png"); break; }
        printf("%s: %ux%u, completed stage-1 grid %ux%u\n", path, image.width, image.height,
               image.low_res.width, image.low_res.height);
    }
    cogview_images_free(images);

    if (!status) {
        /* The most likely caption of at most 32 tokens (the defaults). */
        cogview_caption_params cp = cogview_caption_default_params();
        cp.rgb = rgb;
        cp.rgb_len = sizeof rgb;
        cp.width = SIDE;
        cp.height = SIDE;
        char *caption = NULL;
        e = cogview_caption(session, &cp, &caption);
        if (e) status = fail(e, "cogview_caption");
        else printf("caption: %s\n", caption);
        cogview_string_free(caption);
    }
    const char *candidates[2] = {"a large red circle in the center", "a small green square at the top left"};
    for (int i = 0; !status && i < 2; i++) {
        cogview_caption_score_params sp = cogview_caption_score_default_params();
        sp.rgb = rgb;
        sp.rgb_len = sizeof rgb;
        sp.width = SIDE;
        sp.height = SIDE;
        sp.caption = candidates[i];
        double score = 0;
        e = cogview_caption_score(session, &sp, &score);
        if (e) status = fail(e, "cogview_caption_score");
        else printf("score %.4f: %s\n", score, candidates[i]);
    }
    cogview_session_free(session);
    cogview_pipeline_free(pipeline);
    return status;
}
