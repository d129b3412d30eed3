// Process-wide memory settings. glibc returns large freed blocks to the kernel (munmap,
// heap trimming) and faults them in again on the next allocation: a training or sampling
// step that allocates the same activations every iteration then pays page faults and
// kernel time for every buffer. scorch raises glibc's mmap and trim thresholds at start-up
// so that freed memory is kept for reuse (the measured effect is in the README).
#pragma once
#include <cstdint>
#include <string>

namespace scorch {

// Applies the malloc settings unless the environment sets SCORCH_MALLOC_TUNING=0. Call
// first thing in main. Returns a one-line description of what was done.
std::string tune_malloc();

// The process's peak resident set size so far (getrusage ru_maxrss), in bytes.
int64_t peak_rss_bytes();

// Bytes of memory available to this process: MemAvailable from /proc/meminfo (physical
// memory if unreadable), no more than what its memory cgroup (v2 memory.max, or v1
// memory.limit_in_bytes: a Slurm job's or a node's) has left: limit less usage.
double available_memory();

}  // namespace scorch
