#define _POSIX_C_SOURCE 200809L
/* progress_cancel.c: a progress callback, and cancellation from a second thread.
 *
 *   cc -DCOGVIEW_SHARED progress_cancel.c -I include -L target/release -lcogview -lpthread \
 *      -Wl,-rpath,target/release
 *
 * The main thread generates; a watcher thread waits until CogLM has reported progress and then
 * calls cogview_session_cancel. The run must end with COGVIEW_ERR_CANCELLED. Then a progress
 * callback that returns false cancels a run by itself, and after cogview_session_reset_cancel the
 * same session generates again. Exit status 0 when all of that happened. */
#include "cogview.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct {
    atomic_ulong reports;
    atomic_int stop_after;   /* progress returns false after this many reports; 0 = never */
} progress_state;

static bool on_progress(const char *stage, uint64_t step, uint64_t total, void *user_data) {
    progress_state *s = (progress_state *)user_data;
    unsigned long n = atomic_fetch_add(&s->reports, 1) + 1;
    if (n == 1) printf("progress: %s %llu/%llu\n", stage, (unsigned long long)step, (unsigned long long)total);
    int stop = atomic_load(&s->stop_after);
    return !(stop > 0 && n >= (unsigned long)stop);
}

typedef struct {
    cogview_session *session;
    progress_state *progress;
} watcher_args;

static void *watcher(void *arg) {
    watcher_args *w = (watcher_args *)arg;
    struct timespec pause = {0, 1000000}; /* 1 ms */
    while (atomic_load(&w->progress->reports) == 0) nanosleep(&pause, NULL);
    cogview_session_cancel(w->session);   /* from another thread */
    return NULL;
}

static void on_log(int32_t level, const char *message, void *user_data) {
    (void)user_data;
    fprintf(stderr, "[cogview %d] %s\n", level, message);
}

int main(int argc, char **argv) {
    cogview_pipeline_params pp = cogview_pipeline_default_params();
    if (argc > 2 && !strcmp(argv[1], "--model-dir")) pp.model_dir = argv[2];
    pp.log_callback = on_log;
    cogview_pipeline *pipeline = NULL;
    cogview_error *e = cogview_pipeline_new(&pp, &pipeline);
    if (e) { fprintf(stderr, "%s\n", cogview_error_message(e)); cogview_error_free(e); return 1; }

    progress_state progress;
    atomic_init(&progress.reports, 0);
    atomic_init(&progress.stop_after, 0);
    cogview_session_params sp = cogview_session_default_params();
    sp.progress_callback = on_progress;
    sp.progress_user_data = &progress;
    cogview_session *session = NULL;
    e = cogview_session_new(pipeline, &sp, &session);
    if (e) { fprintf(stderr, "%s\n", cogview_error_message(e)); cogview_error_free(e); cogview_pipeline_free(pipeline); return 1; }

    cogview_generate_params gp = cogview_generate_default_params();
    gp.prompt = "a small red square at the top left";
    gp.num_images = 4;

    int ok = 1;
    /* 1. cancel from a second thread */
    pthread_t thread;
    watcher_args w = {session, &progress};
    pthread_create(&thread, NULL, watcher, &w);
    cogview_images *images = NULL;
    e = cogview_generate(session, &gp, &images);
    pthread_join(thread, NULL);
    if (cogview_error_code(e) == COGVIEW_ERR_CANCELLED && images == NULL) {
        printf("cancelled from a second thread after %lu progress report(s): %s\n",
               atomic_load(&progress.reports), cogview_error_message(e));
    } else {
        printf("expected COGVIEW_ERR_CANCELLED, got code %d\n", cogview_error_code(e));
        ok = 0;
    }
    cogview_error_free(e);

    /* 2. the flag stays set until reset */
    e = cogview_generate(session, &gp, &images);
    if (cogview_error_code(e) != COGVIEW_ERR_CANCELLED) { printf("the cancel flag did not stay set\n"); ok = 0; }
    cogview_error_free(e);
    cogview_session_reset_cancel(session);

    /* 3. a progress callback returning false cancels */
    atomic_store(&progress.reports, 0);
    atomic_store(&progress.stop_after, 2);
    e = cogview_generate(session, &gp, &images);
    if (cogview_error_code(e) == COGVIEW_ERR_CANCELLED) {
        printf("the progress callback cancelled the run after %lu report(s)\n", atomic_load(&progress.reports));
    } else {
        printf("expected the callback to cancel, got code %d\n", cogview_error_code(e));
        ok = 0;
    }
    cogview_error_free(e);

    /* 4. after a reset the session works again */
    cogview_session_reset_cancel(session);
    atomic_store(&progress.stop_after, 0);
    gp.num_images = 1;
    e = cogview_generate(session, &gp, &images);
    if (e) { printf("generation after reset failed: %s\n", cogview_error_message(e)); ok = 0; }
    else printf("generated %zu image(s) after reset\n", cogview_images_count(images));
    cogview_error_free(e);
    cogview_images_free(images);

    cogview_session_free(session);
    cogview_pipeline_free(pipeline);
    return ok ? 0 : 1;
}
