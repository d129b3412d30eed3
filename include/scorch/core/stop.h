// The stop protocol shared by every long-running command. SIGTERM, SIGUSR1 (Slurm's
// pre-emption and time-limit signals) and SIGINT (Ctrl-C) only set a flag; the work loop polls it at safe
// points, all ranks agree through an all-reduce of the flag (never on a local signal alone,
// so every rank stops at the same step), checkpoint, and the command exits with
// kStoppedExitCode so that wrappers can requeue.
#pragma once

namespace scorch {

// Exit status of a command that was stopped by a signal after saving its state.
constexpr int kStoppedExitCode = 3;

// Installs the SIGTERM/SIGUSR1/SIGINT handlers (idempotent).
void install_stop_handlers();
// True once a stop signal arrived in this process.
bool stop_requested();
// Sets the flag as a signal would (tests; a rank that wants the job to stop cleanly).
void request_stop();
// Clears the flag (tests run several jobs in one process).
void clear_stop_request();

}  // namespace scorch
