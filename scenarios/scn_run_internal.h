/* scn_run_internal.h — the state of one scenario run, shared by the runner's files
 * (scn_run.c: stages and teardown; scn_run_sample.c: the per-second sampler; scn_run_act.c:
 * actions at their times). Not public: the API is scn_run.h.
 *
 * Key decision: one struct, one loop, one owner. Every callback finds the run through its
 * handle's data pointer, and teardown is a count of pieces still closing, so the loop ends
 * exactly when the last handle of the last piece has closed. */
#ifndef RELIST_SCN_RUN_INTERNAL_H
#define RELIST_SCN_RUN_INTERNAL_H

#include "refl.h"
#include "scn_run.h"

#define SCN_RUN_TICK_MS 50

typedef struct scn_hold {
    uint64_t until_ms; /* since t0 */
    size_t from, n;    /* watchers [from, from + n) */
} scn_hold;

typedef struct scn_runner {
    uv_loop_t loop;
    const scn_script *s;
    scn_result *res;
    scn_run *run;
    size_t index;
    const scn_run_opts *o;
    const char *mode;
    scn_watchers w;   /* the run's settings at the start */
    scn_watchers cur; /* after live switches */
    scn_srv *srv;
    scn_ld *ld;
    refl_fleet *fleet;
    scn_stage stage;
    uv_timer_t tick;
    uv_timer_t sample_timer;
    uv_signal_t sigint, sigterm;
    bool signals_on;
    uint64_t t0; /* uv_now at t = 0 (the fleet synced) */
    uint64_t stage_start, total_ms;
    int phase; /* applied to the load driver (-1 none) */
    /* actions */
    uint64_t *act_next; /* next firing, ms since t0 (UINT64_MAX = done) */
    scn_hold *holds;
    size_t n_holds, cap_holds;
    bool restarting;
    bool srv_dead; /* the child exited on its own (noted once) */
    /* sampler */
    scn_sampler sm;
    scn_http_req *scrape;
    bool final_scrape; /* the scrape in flight is the last one */
    void (*final_done)(struct scn_runner *r);
    double last_t;   /* t of the last sample pushed (-1 none) */
    scn_sample last; /* the last sample (for progress) */
    bool have_last;
    uint64_t scrape_failures;
    /* error-log rate limit (per second) */
    uint64_t log_second, log_count, log_dropped;
    /* end */
    bool verify_wait; /* the final verification waits for a mid-run round */
    bool interrupted, failed, stopping;
    int pending; /* pieces still closing */
    char err[512];
} scn_runner;

/* scn_run.c */
void scn_runner_log(scn_runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void scn_runner_log_event(scn_runner *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void scn_runner_note(scn_runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void scn_runner_progress(scn_runner *r, bool sample);
uint64_t scn_runner_elapsed(const scn_runner *r); /* ms since t0 */
/* The run's phases are over (or it was interrupted): final sample, verification, teardown. */
void scn_runner_end(scn_runner *r);

/* scn_run_sample.c */
void scn_sampler_begin(scn_runner *r); /* at t0: the first snapshot, then one a second */
/* The last snapshot; done() runs when it is in (at once when a fresh one exists). */
void scn_sampler_finish(scn_runner *r, void (*done)(scn_runner *r));
void scn_sampler_cancel(scn_runner *r);

/* scn_run_act.c */
int scn_actions_init(scn_runner *r);
void scn_actions_tick(scn_runner *r, uint64_t elapsed_ms);
/* Releases watchers still held (before the final verification). */
void scn_actions_release(scn_runner *r);
void scn_actions_free(scn_runner *r);

#endif
