// `scorch decode`: latents -> data along the probability-flow ODE (T -> eps), sharded over
// ranks; rank 0 writes the result like `scorch sample` (with a PNG grid for images).
#include <CLI/CLI.hpp>

#include "scorch/cli/commands.h"
#include "scorch/core/log.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/data/dataset.h"
#include "scorch/io/hdf5.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/sampling/sampler.h"

namespace scorch::cli {

namespace {

struct DecodeOptions {
  Common common;
  std::string latents, out;
};

int decode(const DecodeOptions& opt, dist::Communicator& comm) {
  auto l = load_score_model(opt.common, comm);
  const auto& cfg = l.r.cfg;
  torch::Tensor z;
  {
    auto f = h5::File::open_read(opt.latents);
    z = h5::read_tensor(f.id(), "latents", opt.latents).to(torch::kFloat32);
  }
  auto item = cfg.item_shape();
  SCORCH_CHECK(z.dim() == static_cast<int64_t>(item.size()) + 1 && z.sizes().slice(1).vec() == item,
               "{}: /latents has shape [{}] but the model's items are [{}]", opt.latents, fmt::join(z.sizes(), ", "),
               fmt::join(item, ", "));
  spdlog::info("decoding {} latents of {} (RK45 rtol {}, atol {})", z.size(0), opt.latents, cfg.sampling.rtol,
               cfg.sampling.atol);
  int64_t nfe = 0;
  auto all = sharded(z.size(0), cfg.eval.batch_size, comm, item, [&](int64_t begin, int64_t count) {
    auto res = sampling::ode_flow(*l.sde, l.score, z.slice(0, begin, begin + count).to(l.device), l.sde->T(),
                                  likelihood::kLikelihoodEps, {cfg.sampling.rtol, cfg.sampling.atol});
    nfe = std::max(nfe, res.nfe);
    return res.x;
  });
  if (comm.rank() == 0) {
    if (cfg.is_image_data()) all = data::unscale(all, cfg.data.centered);
    std::string out = opt.out.empty() ? fmt::format("{}/samples/decoded_{:09d}.h5", l.r.workdir, l.step) : opt.out;
    write_samples(out, all, cfg, l.step, nfe, "decode:ode:rk45");
  }
  return 0;
}

}  // namespace

Command decode_command() {
  return make_command<DecodeOptions>(
      "decode", "latents -> data through the probability-flow ODE (T -> eps)",
      [](CLI::App& app, DecodeOptions& opt) {
        add_common(app, opt.common, true);
        app.add_option("--latents", opt.latents, "HDF5 file with /latents (from scorch encode)")
            ->required()
            ->check(CLI::ExistingFile);
        app.add_option("--out", opt.out, "output file (default <workdir>/samples/decoded_<step>.h5), written like sample");
      },
      [](const DecodeOptions& opt, dist::Communicator& comm) { return decode(opt, comm); });
}

}  // namespace scorch::cli
