// Device placement and backend choice (see dist/backend.h).
#include "scorch/dist/backend.h"

#include <cstring>

#include "scorch/core/error.h"
#include "scorch/core/host.h"
#include "scorch/core/log.h"
#include "scorch/core/torch_compat.h"
#include "scorch/dist/nccl_communicator.h"

#ifdef SCORCH_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace scorch::dist {

namespace {

// A fixed-width row of text, so that every rank's row gathers into one [W, 128] tensor.
torch::Tensor text_row(const std::string& s) {
  auto t = torch::zeros({1, 128}, torch::kUInt8);
  std::memcpy(t.data_ptr(), s.data(), std::min<size_t>(s.size(), 127));
  return t;
}
std::string row_text(const torch::Tensor& row) {
  auto c = row.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()));
}

}  // namespace

std::string describe_device(const torch::Device& device) {
  if (!device.is_cuda()) return device.str();
#ifdef SCORCH_HAVE_CUDA
  return fmt::format("{} ({})", device.str(), at::cuda::getDeviceProperties(device.index())->name);
#else
  return device.str();
#endif
}

torch::Device choose_device(const std::string& want, Communicator& comm) {
  SCORCH_CHECK(want == "auto" || want == "cpu" || want == "cuda",
               "dist.device = \"{}\" is not one of: auto, cpu, cuda", want);
  const bool have_cuda = torch::cuda::is_available() && torch::cuda::device_count() > 0;
#ifdef SCORCH_HAVE_CUDA
  const std::string found = fmt::format("this CUDA build (LibTorch {}, CUDA {}) sees {} GPUs on {}",
                                        compat::torch_version(), compat::torch_cuda_version(),
                                        torch::cuda::device_count(), host_name());
#else
  const std::string found = fmt::format("this scorch was built against a CPU LibTorch ({}) on {}: it has no CUDA",
                                        compat::torch_version(), host_name());
#endif
  SCORCH_CHECK(want != "cuda" || have_cuda, "dist.device = \"cuda\", but {}; use dist.device = \"cpu\" or \"auto\"", found);
#ifdef SCORCH_HAVE_CUDA
  // A CUDA build on a machine without a GPU (a login node, CI) computes on the CPU, and says so.
  if (want == "auto" && !have_cuda && comm.rank() == 0) {
    spdlog::info("dist.device = \"auto\": {}, so every rank computes on the CPU", found);
  }
#endif
  torch::Device device(torch::kCPU);
  if (want == "cuda" || (want == "auto" && have_cuda)) {
    const int n = static_cast<int>(torch::cuda::device_count());
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(gpu_for_local_rank(comm.local_rank(), n)));
  }
  const auto map = placement_map(comm, device);
  if (comm.rank() == 0) spdlog::info("placement of {} ranks:{}", comm.size(), map);
  return device;
}

int gpu_for_local_rank(int local_rank, int visible_gpus) {
  SCORCH_CHECK(visible_gpus > 0 && local_rank >= 0, "no GPU for local rank {} among {} visible GPUs", local_rank,
               visible_gpus);
  return local_rank % visible_gpus;
}

std::string placement_map(Communicator& comm, const torch::Device& device) {
  auto line = fmt::format("{:<24} rank {:>5}  local rank {:>3} of {:<3} {}", host_name(), comm.rank(), comm.local_rank(),
                          comm.local_size(), describe_device(device));
  auto rows = comm.gather_rows(text_row(line), 0);
  std::string map;
  if (comm.rank() == 0) {
    for (int64_t r = 0; r < rows.size(0); ++r) map += "\n  " + row_text(rows[r]);
  }
  return map;
}

bool nccl_compiled() {
#ifdef SCORCH_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

std::string resolve_backend(const std::string& want, const torch::Device& device) {
  SCORCH_CHECK(want == "auto" || want == "mpi" || want == "nccl", "dist.backend = \"{}\" is not one of: auto, mpi, nccl",
               want);
  if (want == "auto") return device.is_cuda() && nccl_compiled() ? "nccl" : "mpi";
  if (want == "nccl") {
    SCORCH_CHECK(nccl_compiled(),
                 "dist.backend = \"nccl\" but this scorch was built without NCCL (it needs a CUDA LibTorch and NCCL at "
                 "configure time: bash jobs/setup.sh --torch pip, or jobs/README.md, GPUs)");
    SCORCH_CHECK(device.is_cuda(), "dist.backend = \"nccl\" needs a GPU per rank, but this rank computes on {} ({} GPUs "
                 "visible on {}): use dist.backend = \"mpi\" or \"auto\"",
                 device.str(), torch::cuda::device_count(), host_name());
  }
  return want;
}

std::shared_ptr<Communicator> make_data_communicator(const std::string& backend, const torch::Device& device,
                                                     Communicator& control, double timeout_s) {
  const std::string b = resolve_backend(backend, device);
  if (b == "mpi") return std::shared_ptr<Communicator>(std::shared_ptr<Communicator>(), &control);  // not owned
  // NCCL: one rank per GPU. Every rank learns every (host, GPU) pair and refuses duplicates.
  auto rows = control.all_gather(text_row(fmt::format("{}|{}", host_name(), device.index())));
  for (int64_t a = 0; a < rows.size(0); ++a) {
    for (int64_t b2 = a + 1; b2 < rows.size(0); ++b2) {
      const std::string key = row_text(rows[a]);
      if (key == row_text(rows[b2])) {
        const auto bar = key.rfind('|');
        SCORCH_THROW(
            "dist.backend = \"nccl\" needs one GPU per rank, but ranks {} and {} share cuda:{} on host {} ({} GPUs "
            "visible there, {} ranks on this node): start at most one rank per GPU, or use dist.backend = \"mpi\" "
            "(staged through host memory, for tests)",
            a, b2, key.substr(bar + 1), key.substr(0, bar), torch::cuda::device_count(), control.local_size());
      }
    }
  }
  return make_nccl_communicator(control, device, timeout_s);
}

#ifndef SCORCH_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(Communicator&, const torch::Device&, double) {
  SCORCH_THROW("this scorch was built without NCCL");
}
#endif

}  // namespace scorch::dist
