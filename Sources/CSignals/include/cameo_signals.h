#ifndef CAMEO_SIGNALS_H
#define CAMEO_SIGNALS_H

/// Installs SIGTERM/SIGINT/SIGUSR1/SIGUSR2/SIGQUIT/SIGHUP handlers for graceful worker shutdown.
/// While the worker is idle (waiting in accept) a signal ends the process at once;
/// while it is busy with a request the signal only sets a flag, checked after the reply.
void cameo_install_graceful_stop(void);

/// Marks whether the worker is inside a request (1) or idle (0).
void cameo_set_busy(int busy);

/// 1 once a stop signal arrived.
int cameo_stop_requested(void);

#endif
