// Choosing where a job computes and which collective backend carries its gradients:
// `dist.device` (auto | cpu | cuda: one GPU per rank, picked by the node-local rank modulo
// the visible GPUs) and `dist.backend` (auto | mpi | nccl: NCCL for CUDA tensors when scorch
// was compiled with it). Rank 0 prints the placement of every rank.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "scorch/dist/communicator.h"

namespace scorch::dist {

// The device of this rank for `want` = auto | cpu | cuda. Collective over `comm` (it
// gathers and logs the map host / rank / local rank / device on rank 0).
torch::Device choose_device(const std::string& want, Communicator& comm);

// The GPU index a rank takes: its node-local rank modulo the GPUs visible on the node
// (one GPU per rank while there are as many, round-robin beyond).
int gpu_for_local_rank(int local_rank, int visible_gpus);

// The placement map on rank 0 ("" elsewhere): one line per rank, "<host> rank R  local rank
// L of S <device>", from every rank's own host name and device. Collective over `comm`.
std::string placement_map(Communicator& comm, const torch::Device& device);

// "cuda:1 (NVIDIA H100 80GB HBM3)" or "cpu".
std::string describe_device(const torch::Device& device);

// Whether this build has the NCCL communicator.
bool nccl_compiled();

// The backend name `want` (auto | mpi | nccl) resolves to for tensors on `device`.
std::string resolve_backend(const std::string& want, const torch::Device& device);

// The communicator for gradients and other data-plane collectives: `control` itself for
// MPI, or a new NCCL communicator on `device` bootstrapped through `control`. NCCL refuses
// two ranks on one GPU (checked here over `control`, with a message naming the host).
// NCCL collectives not complete after `timeout_s` seconds (a dead or hung peer) make a
// watchdog abort the communicator and the job (dist.timeout_s). Collective over `control`.
std::shared_ptr<Communicator> make_data_communicator(const std::string& backend, const torch::Device& device,
                                                     Communicator& control, double timeout_s = 600);

}  // namespace scorch::dist
