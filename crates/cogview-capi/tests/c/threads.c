/* threads.c: one pipeline, used by several threads at once (each with its own session); each
 * thread's image must equal the same seed generated alone. Also frees the pipeline while sessions
 * still run (allowed: the sessions keep the models). Usage: threads [MODEL_DIR] */
#include "cogview.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 3

typedef struct {
    cogview_session *session;
    uint64_t seed;
    unsigned char *pixels;
    size_t len;
    int failed;
} job;

static unsigned char *generate(cogview_session *s, uint64_t seed, size_t *len) {
    cogview_generate_params gp = cogview_generate_default_params();
    gp.prompt = "a large green square at the left";
    gp.seed = seed;
    cogview_images *images = NULL;
    cogview_error *e = cogview_generate(s, &gp, &images);
    if (e) { fprintf(stderr, "seed %llu: %s\n", (unsigned long long)seed, cogview_error_message(e)); cogview_error_free(e); return NULL; }
    cogview_image_view v;
    e = cogview_images_get(images, 0, &v);
    unsigned char *copy = NULL;
    if (!e) {
        copy = malloc(v.rgb_len);
        memcpy(copy, v.rgb, v.rgb_len);
        *len = v.rgb_len;
    }
    cogview_error_free(e);
    cogview_images_free(images);
    return copy;
}

static void *run(void *arg) {
    job *j = (job *)arg;
    j->pixels = generate(j->session, j->seed, &j->len);
    j->failed = j->pixels == NULL;
    return NULL;
}

int main(int argc, char **argv) {
    cogview_pipeline_params pp = cogview_pipeline_default_params();
    if (argc > 1) pp.model_dir = argv[1];
    cogview_pipeline *pipeline = NULL;
    cogview_error *e = cogview_pipeline_new(&pp, &pipeline);
    if (e) { fprintf(stderr, "%s\n", cogview_error_message(e)); cogview_error_free(e); return 1; }

    job jobs[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].seed = 100 + (uint64_t)i;
        e = cogview_session_new(pipeline, NULL, &jobs[i].session);
        if (e) { fprintf(stderr, "%s\n", cogview_error_message(e)); cogview_error_free(e); return 1; }
    }
    /* The sessions keep the models alive. */
    cogview_pipeline_free(pipeline);
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, run, &jobs[i]);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);

    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        size_t len = 0;
        unsigned char *alone = generate(jobs[i].session, jobs[i].seed, &len);
        if (jobs[i].failed || !alone || len != jobs[i].len || memcmp(alone, jobs[i].pixels, len) != 0) {
            printf("seed %llu: the concurrent image differs from the one made alone\n", (unsigned long long)jobs[i].seed);
            bad++;
        } else {
            printf("seed %llu: identical (%zu bytes)\n", (unsigned long long)jobs[i].seed, len);
        }
        free(alone);
        free(jobs[i].pixels);
        cogview_session_free(jobs[i].session);
    }
    return bad ? 1 : 0;
}
