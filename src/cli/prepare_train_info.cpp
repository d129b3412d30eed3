// `scorch prepare`, `scorch train` and `scorch info`, plus the config resolution that
// every subcommand shares.
#include <filesystem>
#include <fstream>

#include "scorch/cli/commands.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/data/converters.h"
#include "scorch/data/dataset.h"
#include "scorch/data/image_grid.h"
#include "scorch/io/hdf5.h"
#include "scorch/io/checkpoint.h"
#include <ATen/CPUGeneratorImpl.h>

#include "scorch/models/analytic_gmm.h"
#include "scorch/models/model.h"
#include "scorch/train/trainer.h"

namespace fs = std::filesystem;

namespace scorch::cli {

Resolved resolve(const Common& opt, bool need_ckpt) {
  Resolved r;
  r.workdir = opt.workdir;
  r.ckpt = opt.ckpt;
  if (r.ckpt.empty() && !r.workdir.empty()) r.ckpt = io::latest_checkpoint(r.workdir);
  if (r.workdir.empty() && !r.ckpt.empty()) {
    auto dir = fs::absolute(r.ckpt).parent_path();
    r.workdir = (dir.filename() == "checkpoints" ? dir.parent_path() : dir).string();
  }
  Config cfg;
  cfg.sources.push_back("defaults");
  if (!r.ckpt.empty()) {
    apply_toml_string(cfg, io::load_checkpoint_header(r.ckpt).config_toml, r.ckpt + ":/config");
  }
  if (!opt.config.empty()) apply_toml_file(cfg, opt.config);
  for (const auto& s : opt.sets) apply_override(cfg, s);
  validate(cfg);
  r.cfg = cfg;
  // analytic_gmm is an exact score: it needs no checkpoint.
  if (need_ckpt && cfg.model.name != "analytic_gmm") {
    SCORCH_CHECK(!r.ckpt.empty(), "no checkpoint: pass --ckpt FILE, or a --workdir whose checkpoints/ holds one{}",
                 r.workdir.empty() ? "" : fmt::format(" ('{}/checkpoints' has none)", r.workdir));
  }
  return r;
}

namespace {
// "wrote FILE: N images HxWxC": from the dataset's shape, without reading the pixels back.
void log_written_images(const std::string& path) {
  auto f = h5::File::open_read(path);
  auto s = h5::shape(f.id(), "images");
  spdlog::info("wrote {}: {} images {}x{}x{}{}", path, s.at(0), s.at(1), s.at(2), s.at(3),
               h5::exists(f.id(), "labels") ? " with labels" : "");
}
}  // namespace

int prepare(const PrepareOptions& opt, dist::Communicator& comm) {
  const std::string& dataset = opt.dataset;
  const std::string& out = opt.out;
  const std::string& config = opt.config;
  const int64_t count = opt.count;
  if (dataset == "cifar10") {
    SCORCH_CHECK(!opt.raw.empty(), "prepare cifar10 needs --raw FOLDER_OR_TARBALL (cifar-10-binary.tar.gz)");
    if (comm.rank() == 0) {
      for (const auto& p : data::prepare_cifar10(opt.raw, out)) log_written_images(p);
    }
    comm.barrier();
    return 0;
  }
  if (dataset == "images") {
    SCORCH_CHECK(!opt.dir.empty() && opt.resolution > 0, "prepare images needs --dir FOLDER and --resolution R");
    if (comm.rank() == 0 && fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path());
    data::prepare_image_folder(opt.dir, opt.resolution, out, comm);
    if (comm.rank() == 0) log_written_images(out);
    return 0;
  }
  if (dataset == "mixture") {
    SCORCH_CHECK(!config.empty(), "prepare mixture needs --config JOB with model.name = \"analytic_gmm\"");
    Config cfg = load_config(config, {});
    SCORCH_CHECK(cfg.model.name == "analytic_gmm", "{}: model.name must be \"analytic_gmm\" for prepare mixture",
                 config);
    SCORCH_CHECK(count > 0, "--count must be positive (got {})", count);
    if (comm.rank() == 0) {
      models::AnalyticGMM gmm(cfg.model);
      auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg.seed));
      auto [x, k] = gmm.sample(count, gen);
      data::write_points(out, x, k);
      fmt::print("prepare: {} exact draws of the mixture in {} -> {}\n", count, config, out);
    }
    comm.barrier();
    return 0;
  }
  if (dataset != "fashion-mnist") {
    SCORCH_THROW("unknown dataset '{}' for prepare: valid are fashion-mnist, cifar10, images, mixture", dataset);
  }
  if (comm.rank() == 0) {
    fs::create_directories(out);
    for (const auto& p : data::prepare_fashion_mnist(opt.raw.empty() ? "/usr/share/datasets/fashion-mnist" : opt.raw, out))
      log_written_images(p);
  }
  comm.barrier();
  return 0;
}

int train(const Common& opt, dist::Communicator& comm) {
  SCORCH_CHECK(!opt.workdir.empty(), "train needs --workdir DIR (checkpoints and logs go there)");
  // defaults <- the newest checkpoint's config (a resumed or imported run) <- --config <- --set
  Config cfg = resolve(opt, /*need_ckpt=*/false).cfg;
  SCORCH_CHECK(cfg.model.name != "analytic_gmm",
               "model.name = \"analytic_gmm\" is an exact score with nothing to train: use it with sample, eval, "
               "encode and decode directly (--config JOB --workdir DIR)");
  if (comm.rank() == 0) {
    fs::create_directories(opt.workdir);
    std::ofstream(opt.workdir + "/config.toml") << to_toml(cfg);
  }
  train::install_stop_handlers();
  train::Trainer trainer(cfg, comm, opt.workdir);
  trainer.resume_latest();
  bool finished = trainer.run();
  if (comm.rank() == 0) {
    fmt::print("train: step {} in {} (checkpoint {}){}\n", trainer.step(), opt.workdir,
               io::latest_checkpoint(opt.workdir), finished ? "" : " - stopped early by a signal");
  }
  return finished ? 0 : 3;
}

int info(const Common& opt, bool list_keys, dist::Communicator& comm) {
  if (comm.rank() != 0) return 0;
  if (list_keys) {
    for (const auto& [key, help] : config_keys()) fmt::print("{:<34} {}\n", key, help);
    return 0;
  }
  auto r = resolve(opt, /*need_ckpt=*/false);
  if (r.cfg.model.name == "analytic_gmm") {
    fmt::print("model         analytic_gmm ({} components, exact score, no parameters)\n", r.cfg.model.gmm_means.size());
  } else {
    auto model = models::make_model(r.cfg);
    const auto n = std::to_string(models::count_parameters(*model));
    std::string grouped;  // 62758915 -> 62,758,915
    for (size_t i = 0; i < n.size(); ++i) grouped += (i > 0 && (n.size() - i) % 3 == 0 ? "," : "") + n.substr(i, 1);
    fmt::print("model         {} ({} parameters, {})\n", r.cfg.model.name, n, grouped);
  }
  fmt::print("sde           {}\n", r.cfg.training.sde);
  auto shape = r.cfg.item_shape();
  fmt::print("data item     [{}]\n", fmt::join(shape, ", "));
  if (!r.ckpt.empty()) {
    auto st = io::load_checkpoint_header(r.ckpt);
    fmt::print("checkpoint    {}\n", r.ckpt);
    fmt::print("step          {}\n", st.step);
    fmt::print("world size    {} (epoch {}, batch {} of it)\n", st.world_size, st.epoch, st.batch_in_epoch);
  }
  fmt::print("\n{}", to_toml(r.cfg));
  return 0;
}

int preview(const std::string& file, int64_t count) {
  auto f = h5::File::open_read(file);
  SCORCH_CHECK(h5::exists(f.id(), "images"), "{}: no /images to preview (point data has /samples or /points)", file);
  auto shape = h5::shape(f.id(), "images");
  SCORCH_CHECK(shape.size() == 4 && shape[0] > 0, "{}: /images must be a non-empty [N,H,W,C]", file);
  auto imgs = h5::read_rows(f.id(), "images", 0, std::min<int64_t>(count, shape[0]), file);
  fmt::print("{} ({} of {} images, {}x{}):\n{}", file, imgs.size(0), shape[0], shape[1], shape[2],
             data::ascii_preview(imgs, count));
  return 0;
}

}  // namespace scorch::cli
