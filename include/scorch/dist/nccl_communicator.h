// The NCCL communicator (compiled only when a CUDA LibTorch and NCCL are found): rank 0
// creates the unique id, the control communicator (MPI) broadcasts it, every rank calls
// ncclCommInitRank on its GPU. Collectives run on the communicator's own high-priority
// stream, ordered after the caller's current stream by an event, and the caller's stream
// waits for their completion event in Work::wait() (the host does not block). A watchdog
// thread polls the oldest collective in flight and NCCL's asynchronous error: one that has
// not completed after `timeout_s` (a peer died or hangs) or an error makes it abort the
// communicator (ncclCommAbort) and the job (MPI_Abort through `control`), so that no rank
// waits forever.
#pragma once
#include <memory>

#include "scorch/dist/communicator.h"

namespace scorch::dist {

// Collective over `control`. `device` is this rank's GPU.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& control, const torch::Device& device,
                                                     double timeout_s);

}  // namespace scorch::dist
