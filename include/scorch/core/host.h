// Where and when this process runs, for messages, the workdir lock and status files.
#pragma once
#include <string>

namespace scorch {

// This machine's host name ("unknown-host" if the system will not say).
std::string host_name();
// The local time now, ISO 8601 with its UTC offset: "2026-11-30T07:12:10+0000".
std::string local_time_iso8601();
// Seconds since the Unix epoch now, with the clock's sub-second part (log rows, events).
double unix_seconds();

}  // namespace scorch
