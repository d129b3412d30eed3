// The NCCL communicator (compiled only when a CUDA LibTorch and NCCL are found): rank 0
// creates the unique id, the control communicator (MPI) broadcasts it, every rank calls
// ncclCommInitRank on its GPU. Collectives run on the communicator's own high-priority
// stream, ordered after the caller's current stream by an event, and the caller's stream
// waits for their completion event in Work::wait() (the host does not block).
#pragma once
#include <memory>

#include "scorch/dist/communicator.h"

namespace scorch::dist {

// Collective over `control`. `device` is this rank's GPU.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& control, const torch::Device& device);

}  // namespace scorch::dist
