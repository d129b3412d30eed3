// The farm loop shared by `scorch inpaint` and `scorch colorize` (controllable generation,
// Song et al. 2021, section 5): every row of a data file is one item; batches of
// eval.batch_size rows are read by index where they are dealt, completed under a
// sampling::Constraint with the job's sampler (pc or ode; the fast methods too) and written
// to <out>.parts/ (a rerun resumes); rank 0 then assembles --out and draws the PNG grid
// "input | result | original" for the first rows.
#include <filesystem>

#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/log.h"
#include "scorch/core/stop.h"
#include "scorch/data/dataset.h"
#include "scorch/data/image_grid.h"
#include "scorch/io/hdf5.h"
#include "scorch/sampling/constraint.h"
#include "scorch/sampling/sampler.h"

namespace fs = std::filesystem;

namespace scorch::cli {

int run_controlled(const Common& common, dist::Communicator& comm, const Controlled& c) {
  install_stop_handlers();
  auto l = load_score_model(common, comm);
  const auto& cfg = l.r.cfg;
  const bool images = cfg.is_image_data();
  const std::string key = images ? "images" : "points";
  std::vector<int64_t> shape;
  {
    auto f = h5::File::open_read(c.data);
    SCORCH_CHECK(h5::exists(f.id(), key), "{}: no /{} (the model's data are {})", c.data, key,
                 images ? "images" : "points");
    shape = h5::shape(f.id(), key);
  }
  const auto item = cfg.item_shape();
  const std::vector<int64_t> want = images ? std::vector<int64_t>{item[1], item[2], item[0]} : item;
  SCORCH_CHECK(std::vector<int64_t>(shape.begin() + 1, shape.end()) == want,
               "{}: /{} rows are [{}] but the model's items are [{}]", c.data, key,
               fmt::join(shape.begin() + 1, shape.end(), ", "), fmt::join(want, ", "));
  const int64_t n = c.count > 0 ? std::min(c.count, shape[0]) : shape[0];
  SCORCH_CHECK(n > 0, "{}: no rows to {}", c.data, c.kind);
  // Everything the result depends on: the data file (path, size, modification time), the
  // mask, how many rows, the noise seed, the sampler, the checkpoint's identity. The default
  // output name carries its hash, so that another input never overwrites an earlier result.
  std::string data_stamp;
  {
    std::error_code ec;
    const auto when = fs::last_write_time(c.data, ec);
    data_stamp = fmt::format("{} ({} bytes, modified {})", fs::absolute(c.data).string(), fs::file_size(c.data, ec),
                             ec ? 0 : when.time_since_epoch().count());
  }
  const std::string settings =
      fmt::format("{} {} mask {}\nstep {}\nrows {}\neval.seed = {}\ncheckpoint_identity = {}\n{}", c.kind, data_stamp,
                  c.mask_id, l.step, n, cfg.eval.seed, l.r.ckpt_identity, sampling::settings(cfg));
  const std::string out =
      c.out.empty() ? fmt::format("{}/samples/{}_{:09d}-{}{}-{}.h5", l.r.workdir, c.kind, l.step,
                                  sampling::short_name(cfg), c.tag.empty() ? "" : "-" + c.tag,
                                  fnv1a64_hex(settings).substr(0, 8))
                    : c.out;
  if (comm.rank() == 0 && fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path());
  farm::Plan plan;
  plan.dir = out + ".parts";
  plan.num_items = n;
  plan.batch_size = cfg.eval.batch_size;
  plan.balance = cfg.eval.balance;
  plan.what = c.kind == "inpaint" ? "inpainted items" : "colourised images";
  if (comm.rank() == 0) {
    spdlog::info("{}: {} rows of {} ({}, batches of {}, {} rank(s))", c.kind, n, c.data, sampling::short_name(cfg),
                 cfg.eval.batch_size, comm.size());
  }
  auto report = farm::run(
      comm, plan, [&](const farm::Batch& b) { return farm::batch_file_complete(b, "settings", settings); },
      [&](const farm::Batch& b) {
        torch::Tensor x0;
        {
          auto f = h5::File::open_read(c.data);
          auto rows = h5::read_rows(f.id(), key, b.begin, b.count, c.data);
          x0 = images ? data::scale(data::images_to_unit(rows), cfg.data.centered) : rows.to(torch::kFloat32);
        }
        x0 = x0.to(l.device);
        auto constraint = c.make(x0);
        const auto index = b.indices();
        auto noise = sampling::Noise::per_item(static_cast<uint64_t>(cfg.eval.seed), index, l.device);
        auto [score, labels] = l.score_for(index);
        auto res = sampling::sample(cfg, *l.sde, score, x0.sizes(), noise, {}, &constraint);
        auto x = res.x.to(torch::kFloat32).cpu();
        SCORCH_CHECK(torch::isfinite(x).all().item<bool>(), "{}: batch {} holds NaN or Inf", c.kind, b.id);
        if (images) x = data::unscale(x, cfg.data.centered);
        farm::write_batch(b, "settings", settings, [&](hid_t f) {
          h5::write_tensor(f, "samples", x);
          if (images) h5::write_tensor(f, "images", data::unit_to_images(x));
          if (labels.defined()) h5::write_tensor(f, "labels", labels);
          h5::set_attr(f, "nfe", res.nfe);
        });
        return farm::Outcome{res.nfe};
      });
  if (stopped(comm, report, plan.dir)) return kStoppedExitCode;
  if (comm.rank() == 0) {
    spdlog::info("{}", report.summary("items"));
    std::vector<std::string> names{"index", "samples"};
    if (images) names.push_back("images");
    farm::assemble(plan, out, names, [&](hid_t f) {
      h5::set_attr(f, "step", l.step);
      h5::set_attr(f, "nfe_mean", report.nfe_mean);
      h5::set_attr(f, "sampler", sampling::short_name(cfg));
      h5::set_attr(f, "data", fs::absolute(c.data).string());
      h5::write_string(f, "config", to_toml(cfg));
    });
    if (images) {
      const int64_t k = std::min<int64_t>(8, n);
      auto results = farm::read_batches(plan, "images", k);
      torch::Tensor originals;
      {
        auto f = h5::File::open_read(c.data);
        originals = h5::read_rows(f.id(), "images", 0, k, c.data);
      }
      auto inputs = data::unit_to_images(c.show_input(data::images_to_unit(originals)));
      if (inputs.size(3) != results.size(3)) inputs = inputs.expand({-1, -1, -1, results.size(3)}).contiguous();
      auto grid = torch::stack({inputs, results, originals.expand_as(results).contiguous()}, 1).flatten(0, 1);
      const auto png = png_beside(out);
      data::write_png_grid(png, grid, results.size(1) < 64 ? 2 : 1, /*columns=*/3);
      fmt::print("input | result | original for the first {} -> {}\n", k, png);
    }
    fs::remove_all(plan.dir);
    fmt::print("{}: {} items -> {}\n", c.kind, n, out);
  }
  return 0;
}

}  // namespace scorch::cli
