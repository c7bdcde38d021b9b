// Signal handling lives in C because the handler must be async-signal-safe: it may only
// touch volatile sig_atomic_t flags and call _exit(2), which Swift cannot promise.
#include "cameo_signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t busy = 0;
static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int signo) {
    (void)signo;
    stop_requested = 1;
    // Idle workers sit in accept(); nothing is in flight, so leave now. A busy worker
    // finishes the request and its loop sees the flag afterwards.
    if (!busy) {
        _exit(0);
    }
}

void cameo_install_graceful_stop(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    // SA_RESTART: a busy worker's reads and writes on the FastCGI socket resume after the
    // handler (libfcgi does not retry EINTR itself), so the request in flight completes. An
    // idle worker needs no EINTR to leave: the handler exits.
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGUSR1, &action, NULL);
    // SIGUSR2 is the one multiwatch forwards without stopping itself: `systemctl reload`
    // sends it, each worker finishes its request and exits, and multiwatch starts a fresh one
    // that reads the new config.
    sigaction(SIGUSR2, &action, NULL);
    // multiwatch may pass on SIGQUIT or SIGHUP when it stops; the Swift runtime would
    // otherwise treat SIGQUIT as a crash and print a backtrace.
    sigaction(SIGQUIT, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    // multiwatch handles signals through libev, which blocks them; its children inherit the
    // mask, so without this a worker would never see the stop signal.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGUSR1);
    sigaddset(&stop_signals, SIGUSR2);
    sigaddset(&stop_signals, SIGQUIT);
    sigaddset(&stop_signals, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
    // A client that hangs up mid-reply must not kill the worker.
    signal(SIGPIPE, SIG_IGN);
}

void cameo_set_busy(int value) { busy = value; }

int cameo_stop_requested(void) { return stop_requested; }
