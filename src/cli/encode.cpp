// `scorch encode`: data -> latents through the probability-flow ODE (eps -> T), through the
// farm: batches of eval.batch_size rows are read from the data file by index and encoded
// where they are dealt, one file per batch in <out>.parts/ (a rerun resumes); rank 0 then
// writes --out one batch at a time.
#include <CLI/CLI.hpp>

#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/stop.h"
#include "scorch/data/dataset.h"
#include "scorch/data/source.h"
#include "scorch/io/hdf5.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/sampling/sampler.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

struct EncodeOptions {
  Common common;
  std::string data, out;
  int64_t limit = 0;
};

int encode(const EncodeOptions& opt, dist::Communicator& comm) {
  install_stop_handlers();
  auto l = load_score_model(opt.common, comm);
  const auto& cfg = l.r.cfg;
  const auto info = data::inspect(opt.data, opt.limit);
  data::check_matches(info, cfg);  // before anything is read
  const auto source = data::open_source(info, data::source_options(cfg), &comm);  // read by index
  farm::Plan plan;
  plan.dir = opt.out + ".parts";
  plan.num_items = info.shape[0];
  plan.batch_size = cfg.eval.batch_size;
  plan.balance = cfg.eval.balance;
  plan.what = "encoded items";
  const std::string settings = fmt::format("encode {} rtol {} atol {} step {}{}", fs::absolute(opt.data).string(),
                                           cfg.eval.rtol, cfg.eval.atol, l.step,
                                           opt.limit > 0 ? fmt::format(" first {}", plan.num_items) : "");
  if (comm.rank() == 0) {
    spdlog::info("encoding {} items of {} through the probability-flow ODE (RK45 rtol {}, atol {})", plan.num_items,
                 opt.data, cfg.eval.rtol, cfg.eval.atol);
  }
  auto report = farm::run(
      comm, plan, [&](const farm::Batch& b) { return farm::batch_file_complete(b, "settings", settings); },
      [&](const farm::Batch& b) {
        const torch::Tensor rows = source->rows(b.begin, b.count);
        auto x = info.image ? data::scale(data::images_to_unit(rows.to(l.device)), cfg.data.centered)
                            : rows.to(l.device, torch::kFloat32);
        auto res = sampling::ode_flow(*l.sde, l.score, x, likelihood::kLikelihoodEps, l.sde->T(),
                                      {cfg.eval.rtol, cfg.eval.atol});
        farm::write_batch(b, "settings", settings, [&](hid_t f) {
          h5::write_tensor(f, "latents", res.x.to(torch::kFloat32).cpu());
          h5::set_attr(f, "nfe", res.nfe);
        });
        return farm::Outcome{res.nfe};
      });
  if (stopped(comm, report, plan.dir)) return kStoppedExitCode;
  if (comm.rank() == 0) {
    spdlog::info("{}", report.summary("items"));
    farm::assemble(plan, opt.out, {"latents"}, [&](hid_t f) {
      h5::set_attr(f, "step", l.step);
      h5::set_attr(f, "data", opt.data);
      h5::set_attr(f, "nfe_mean", report.nfe_mean);
      h5::write_string(f, "config", to_toml(cfg));
    });
    fs::remove_all(plan.dir);
    fmt::print("encode: {} latents -> {}\n", plan.num_items, opt.out);
  }
  return 0;
}

}  // namespace

Command encode_command() {
  return make_command<EncodeOptions>(
      "encode", "data -> latents through the probability-flow ODE (eps -> T)",
      [](CLI::App& app, EncodeOptions& opt) {
        add_common(app, opt.common, true);
        app.add_option("--data", opt.data, "dataset HDF5 file (/images or /points)")->required()->check(CLI::ExistingFile);
        app.add_option("--out", opt.out, "output HDF5 file: /latents float32 in model-input layout, e.g. [N,C,H,W]")
            ->required();
        app.add_option("--limit", opt.limit, "encode only the first N items (default: all)")->check(CLI::NonNegativeNumber);
        app.footer("Batches of eval.batch_size are dealt over ranks (eval.balance) and kept in <out>.parts/ until --out "
                   "is written: a rerun after a crash resumes.");
      },
      [](const EncodeOptions& opt, dist::Communicator& comm) { return encode(opt, comm); });
}

}  // namespace scorch::cli
