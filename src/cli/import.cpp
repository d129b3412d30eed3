// `scorch import`: a published score_sde_pytorch checkpoint -> a scorch HDF5 checkpoint that
// sample, eval, encode/decode and train (resume) accept. Runs on rank 0; the network is
// built from the job file, and every tensor of the file must fit it.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/core/error.h"
#include "scorch/io/reference_checkpoint.h"
#include "scorch/models/model.h"

namespace fs = std::filesystem;

namespace scorch::cli {

int import_checkpoint(const std::string& from, const std::string& src, const Common& opt, const std::string& out,
                      dist::Communicator& comm) {
  SCORCH_CHECK(from == "score-sde-pytorch", "--from '{}' is not a known format: valid is score-sde-pytorch", from);
  SCORCH_CHECK(!opt.config.empty(), "scorch import needs --config JOB.toml: the job whose network the checkpoint holds");
  SCORCH_CHECK(!out.empty() || !opt.workdir.empty(), "scorch import needs --out FILE or --workdir DIR");
  Config cfg = load_config(opt.config, opt.sets);
  if (comm.rank() != 0) return 0;
  auto net = models::make_model(cfg);
  spdlog::info("reading {} (score_sde_pytorch) for the {} network of {} ({} parameters)", src, cfg.model.name,
               opt.config, models::count_parameters(*net));
  auto ref = io::read_score_sde_pytorch(src);
  auto st = io::convert_reference(ref, *net, cfg, src);
  const std::string dest = out.empty() ? io::checkpoint_path(opt.workdir, st.step) : out;
  if (fs::path(dest).has_parent_path()) fs::create_directories(fs::path(dest).parent_path());
  io::save_checkpoint(dest, st);
  spdlog::info("wrote {}: step {}, {} parameters + {} buffers, EMA ({} updates, decay {}), Adam ({} steps)", dest,
               st.step, st.params.size(), st.buffers.size(), st.ema_updates, st.ema_decay, st.adam_steps);
  return 0;
}

}  // namespace scorch::cli
