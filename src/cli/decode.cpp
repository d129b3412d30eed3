// `scorch decode`: latents -> data through the probability-flow ODE (T -> eps), through the
// farm: batches of eval.batch_size latents are read by index and decoded where they are
// dealt, one file per batch in <out>.parts/ (a rerun resumes); rank 0 then writes --out
// one batch at a time (/samples in data space and, for images, /images uint8 and a grid).
#include <CLI/CLI.hpp>

#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/stop.h"
#include "scorch/data/dataset.h"
#include "scorch/data/image_grid.h"
#include "scorch/io/hdf5.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/sampling/sampler.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

struct DecodeOptions {
  Common common;
  std::string latents, out;
};

int decode(const DecodeOptions& opt, dist::Communicator& comm) {
  install_stop_handlers();
  auto l = load_score_model(opt.common, comm);
  const auto& cfg = l.r.cfg;
  std::vector<int64_t> shape;
  {
    auto f = h5::File::open_read(opt.latents);
    SCORCH_CHECK(h5::exists(f.id(), "latents"), "{}: no /latents (write them with scorch encode)", opt.latents);
    shape = h5::shape(f.id(), "latents");
  }
  auto item = cfg.item_shape();
  SCORCH_CHECK(shape.size() == item.size() + 1 && std::vector<int64_t>(shape.begin() + 1, shape.end()) == item,
               "{}: /latents has shape [{}] but the model's items are [{}]", opt.latents, fmt::join(shape, ", "),
               fmt::join(item, ", "));
  const std::string out = opt.out.empty() ? fmt::format("{}/samples/decoded_{:09d}.h5", l.r.workdir, l.step) : opt.out;
  farm::Plan plan;
  plan.dir = out + ".parts";
  plan.num_items = shape[0];
  plan.batch_size = cfg.eval.batch_size;
  plan.balance = cfg.eval.balance;
  plan.what = "decoded items";
  const std::string settings = fmt::format("decode {} rtol {} atol {} step {}", fs::absolute(opt.latents).string(),
                                           cfg.sampling.rtol, cfg.sampling.atol, l.step);
  if (comm.rank() == 0) {
    spdlog::info("decoding {} latents of {} (RK45 rtol {}, atol {})", shape[0], opt.latents, cfg.sampling.rtol,
                 cfg.sampling.atol);
  }
  auto report = farm::run(
      comm, plan, [&](const farm::Batch& b) { return farm::batch_file_complete(b, "settings", settings); },
      [&](const farm::Batch& b) {
        torch::Tensor z;
        {
          auto f = h5::File::open_read(opt.latents);
          z = h5::read_rows(f.id(), "latents", b.begin, b.count, opt.latents).to(l.device, torch::kFloat32);
        }
        auto res = sampling::ode_flow(*l.sde, l.score, z, l.sde->T(), likelihood::kLikelihoodEps,
                                      {cfg.sampling.rtol, cfg.sampling.atol});
        auto x = res.x.to(torch::kFloat32).cpu();
        if (cfg.is_image_data()) x = data::unscale(x, cfg.data.centered);
        farm::write_batch(b, "settings", settings, [&](hid_t f) {
          h5::write_tensor(f, "samples", x);
          if (cfg.is_image_data()) h5::write_tensor(f, "images", data::unit_to_images(x));
          h5::set_attr(f, "nfe", res.nfe);
        });
        return farm::Outcome{res.nfe};
      });
  if (stopped(comm, report, plan.dir)) return kStoppedExitCode;
  if (comm.rank() == 0) {
    spdlog::info("{}", report.summary("items"));
    std::vector<std::string> names{"samples"};
    if (cfg.is_image_data()) names.push_back("images");
    farm::assemble(plan, out, names, [&](hid_t f) {
      h5::set_attr(f, "step", l.step);
      h5::set_attr(f, "nfe_mean", report.nfe_mean);
      h5::set_attr(f, "sampler", std::string("decode:ode:rk45"));
      h5::write_string(f, "config", to_toml(cfg));
    });
    if (cfg.is_image_data()) {
      auto imgs = farm::read_batches(plan, "images", 64);
      const auto png = png_beside(out);
      data::write_png_grid(png, imgs, imgs.size(1) < 64 ? 2 : 1);
      fmt::print("grid of the first {} -> {}\n", imgs.size(0), png);
    }
    fs::remove_all(plan.dir);
    fmt::print("decode: {} items -> {}\n", plan.num_items, out);
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
        app.add_option("--out", opt.out, "output file (default <workdir>/samples/decoded_<step>.h5): /samples, and "
                       "/images uint8 plus a PNG grid for image data");
        app.footer("Batches of eval.batch_size are dealt over ranks (eval.balance) and kept in <out>.parts/ until --out "
                   "is written: a rerun after a crash resumes.");
      },
      [](const DecodeOptions& opt, dist::Communicator& comm) { return decode(opt, comm); });
}

}  // namespace scorch::cli
