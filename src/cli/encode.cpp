// `scorch encode`: data -> latents along the probability-flow ODE (eps -> T), sharded over
// ranks in chunks of eval.batch_size; rank 0 writes /latents in model-input layout.
#include <CLI/CLI.hpp>

#include "scorch/cli/commands.h"
#include "scorch/core/log.h"
#include "scorch/cli/common.h"
#include "scorch/data/dataset.h"
#include "scorch/io/hdf5.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/sampling/sampler.h"

namespace scorch::cli {

namespace {

struct EncodeOptions {
  Common common;
  std::string data, out;
};

int encode(const EncodeOptions& opt, dist::Communicator& comm) {
  auto l = load_score_model(opt.common, comm);
  const auto& cfg = l.r.cfg;
  const auto info = data::inspect(opt.data);
  data::check_matches(info, cfg);  // before anything is read
  auto ds = data::load(info);
  const auto item = cfg.item_shape();
  spdlog::info("encoding {} items of {} through the probability-flow ODE (RK45 rtol {}, atol {})", ds.size(), opt.data,
               cfg.eval.rtol, cfg.eval.atol);
  int64_t nfe = 0;
  auto all = sharded(ds.size(), cfg.eval.batch_size, comm, item, [&](int64_t begin, int64_t count) {
    auto x = ds.is_image() ? data::scale(data::images_to_unit(ds.images.slice(0, begin, begin + count).to(l.device)),
                                         cfg.data.centered)
                           : ds.points.slice(0, begin, begin + count).to(l.device);
    auto res = sampling::ode_flow(*l.sde, l.score, x, likelihood::kLikelihoodEps, l.sde->T(),
                                  {cfg.eval.rtol, cfg.eval.atol});
    nfe = std::max(nfe, res.nfe);
    return res.x;
  });
  auto nfe_t = torch::tensor({nfe}, torch::kInt64);
  comm.allreduce_sum(nfe_t);
  if (comm.rank() == 0) {
    h5::write_atomically(opt.out, [&](hid_t f) {
      h5::write_tensor(f, "latents", all);
      h5::set_attr(f, "step", l.step);
      h5::set_attr(f, "data", opt.data);
      h5::set_attr(f, "nfe_sum_over_ranks", nfe_t.item<int64_t>());
      h5::write_string(f, "config", to_toml(cfg));
    });
    fmt::print("encode: {} latents [{}] -> {}\n", all.size(0), fmt::join(all.sizes(), ", "), opt.out);
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
      },
      [](const EncodeOptions& opt, dist::Communicator& comm) { return encode(opt, comm); });
}

}  // namespace scorch::cli
