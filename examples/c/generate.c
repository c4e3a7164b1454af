/* generate.c: prompt -> PNG files with the cogview C API.
 *
 *   cc -DCOGVIEW_SHARED generate.c -I include -L target/release -lcogview \
 *      -Wl,-rpath,target/release -o generate
 *   (or statically: cc generate.c -I include target/release/libcogview.a -lpthread -ldl -lm)
 *   ./generate "a large blue circle in the center" -n 2 --seed 7 --out out
 *
 * Without --model-dir or --config it uses the default model built into the library. */
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

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROMPT [-n N] [--seed S] [--out DIR] [--model-dir DIR] [--config FILE]\n", argv[0]);
        return 2;
    }
    cogview_pipeline_params pp = cogview_pipeline_default_params();
    cogview_generate_params gp = cogview_generate_default_params();
    gp.prompt = argv[1];
    const char *out_dir = "out";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) gp.num_images = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seed")) gp.seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--out")) out_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--model-dir")) pp.model_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--config")) pp.config_path = argv[i + 1];
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (make_output_dir(out_dir)) return 1;

    printf("cogview %s (API %u)\n", cogview_version(), cogview_api_version());
    cogview_pipeline *pipeline = NULL;
    cogview_error *e = cogview_pipeline_new(&pp, &pipeline);
    if (e) return fail(e, "cogview_pipeline_new");
    cogview_session *session = NULL;
    e = cogview_session_new(pipeline, NULL, &session);
    if (e) { cogview_pipeline_free(pipeline); return fail(e, "cogview_session_new"); }

    cogview_images *images = NULL;
    e = cogview_generate(session, &gp, &images);
    int status = 0;
    if (e) {
        status = fail(e, "cogview_generate");
    } else {
        for (size_t i = 0; i < cogview_images_count(images); i++) {
            cogview_image_view image;
            e = cogview_images_get(images, i, &image);
            if (e) { status = fail(e, "cogview_images_get"); break; }
            char path[4096];
            snprintf(path, sizeof path, "%s/image-%llu.png", out_dir, (unsigned long long)image.seed);
            e = cogview_image_save_png(&image, path);
            if (e) { status = fail(e, "cogview_image_save_png"); break; }
            printf("%s: %ux%u, stage-1 grid %ux%u\n", path, image.width, image.height,
                   image.low_res.width, image.low_res.height);
        }
    }
    cogview_images_free(images);
    cogview_session_free(session);
    cogview_pipeline_free(pipeline);
    return status;
}
