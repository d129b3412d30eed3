// scorch: score-based generative models on MPI ranks. main only declares the subcommands
// from the table below (each lives in src/cli/<command>.cpp), parses and dispatches; errors
// are printed once, with the rank, and abort the job so that no other rank waits forever
// in a collective.
#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

#include "scorch/cli/commands.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/memory.h"
#include "scorch/core/version.h"
#include "scorch/dist/communicator.h"

int main(int argc, char** argv) {
  const std::string malloc_note = scorch::tune_malloc();
  const std::vector<scorch::cli::Command> commands{
      scorch::cli::prepare_command(), scorch::cli::train_command(),  scorch::cli::train_classifier_command(), scorch::cli::sample_command(),
      scorch::cli::eval_command(),    scorch::cli::encode_command(), scorch::cli::decode_command(),
      scorch::cli::info_command(),    scorch::cli::import_command(), scorch::cli::export_command(), scorch::cli::bench_command(),
      scorch::cli::preview_command(), scorch::cli::plot_command(), scorch::cli::inpaint_command(),
      scorch::cli::colorize_command(), scorch::cli::ema_command(),
  };
  CLI::App app{
      "scorch: train and evaluate score-based generative models (Song et al., SDEs) on MPI ranks, on CPUs or GPUs.\n"
      "Run under mpirun/srun for data parallelism, or as a plain process. Configuration: defaults in code\n"
      "<- the checkpoint's config <- --config JOB.toml <- --set overrides. `scorch info --keys` lists every key."};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] { return scorch::build_info_text(); },
                       "print scorch's version and git commit, the build type and the LibTorch, CUDA/cuDNN/NCCL, MPI "
                       "and HDF5 versions it was built with, and exit");
  int threads = 0;
  app.add_option("--threads", threads, "intra-op CPU threads per rank (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            try {
              size_t used = 0;
              const long n = std::stol(v, &used);
              if (used == v.size() && n >= 1 && n <= 65536) return "";
            } catch (const std::exception&) {
            }
            return "--threads takes a whole number of threads from 1 to 65536, got '" + v + "'";
          },
          "N"));
  app.footer("Environment: SCORCH_MALLOC_TUNING=0 keeps glibc's default malloc thresholds.");
  std::vector<CLI::App*> subs;
  for (const auto& c : commands) {
    subs.push_back(app.add_subcommand(c.name, c.help));
    c.declare(*subs.back());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  scorch::dist::MpiSession mpi(&argc, &argv);
  auto comm = scorch::dist::mpi_world();
  scorch::init_logging(comm->rank(), comm->size());
  spdlog::debug("{}", malloc_note);
  if (threads > 0) torch::set_num_threads(threads);
  try {
    for (size_t i = 0; i < commands.size(); ++i) {
      if (*subs[i]) return commands[i].run(*comm);
    }
  } catch (const std::exception& e) {
    std::string msg = scorch::message_of(e);
    if (msg.rfind("[rank", 0) != 0) msg = fmt::format("[rank {}] {}", comm->rank(), msg);
    // Print once: an error every rank hits (a bad config) is printed by rank 0, whose abort
    // ends the others first; a rank that fails alone still prints, a moment later.
    if (comm->size() > 1 && comm->rank() != 0) std::this_thread::sleep_for(std::chrono::seconds(2));
    std::cerr << "scorch: error: " << msg << std::endl;
    if (comm->size() > 1) comm->abort(1);
    return 1;
  }
  return 0;
}
