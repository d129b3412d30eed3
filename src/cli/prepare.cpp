// `scorch prepare DATASET`: converts a published dataset (Fashion-MNIST IDX files, CIFAR-10
// binary batches, a folder of images) or exact mixture draws to scorch's HDF5 schema.
#include <CLI/CLI.hpp>
#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/data/converters.h"
#include "scorch/data/dataset.h"
#include "scorch/io/hdf5.h"
#include "scorch/models/analytic_gmm.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

struct PrepareOptions {
  std::string dataset;     // fashion-mnist | cifar10 | images | mixture
  std::string raw;         // fashion-mnist: IDX folder; cifar10: batches folder or tarball
  std::string dir;         // images: folder of PNG/JPEG files
  int64_t resolution = 0;  // images: output H = W
  std::string out;         // folder (fashion-mnist, cifar10) or file (cifar10 X.h5, images, mixture)
  std::string config;      // mixture: job file of the analytic_gmm
  int64_t count = 10000;   // mixture: number of points
};

// "wrote FILE: N images HxWxC": from the dataset's shape, without reading the pixels back.
void log_written_images(const std::string& path) {
  auto f = h5::File::open_read(path);
  auto s = h5::shape(f.id(), "images");
  spdlog::info("wrote {}: {} images {}x{}x{}{}", path, s.at(0), s.at(1), s.at(2), s.at(3),
               h5::exists(f.id(), "labels") ? " with labels" : "");
}

int prepare(const PrepareOptions& opt, dist::Communicator& comm) {
  const std::string& dataset = opt.dataset;
  const std::string& out = opt.out;
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
    SCORCH_CHECK(!opt.config.empty(), "prepare mixture needs --config JOB with model.name = \"analytic_gmm\"");
    Config cfg = load_config(opt.config, {});
    SCORCH_CHECK(cfg.model.name == "analytic_gmm", "{}: model.name must be \"analytic_gmm\" for prepare mixture",
                 opt.config);
    SCORCH_CHECK(opt.count > 0, "--count must be positive (got {})", opt.count);
    if (comm.rank() == 0) {
      models::AnalyticGMM gmm(cfg.model);
      auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg.seed));
      auto [x, k] = gmm.sample(opt.count, gen);
      data::write_points(out, x, k);
      fmt::print("prepare: {} exact draws of the mixture in {} -> {}\n", opt.count, opt.config, out);
    }
    comm.barrier();
    return 0;
  }
  SCORCH_CHECK(dataset == "fashion-mnist",
               "unknown dataset '{}' for prepare: valid are fashion-mnist, cifar10, images, mixture", dataset);
  if (comm.rank() == 0) {
    fs::create_directories(out);
    for (const auto& p : data::prepare_fashion_mnist(opt.raw.empty() ? "/usr/share/datasets/fashion-mnist" : opt.raw, out))
      log_written_images(p);
  }
  comm.barrier();
  return 0;
}

}  // namespace

Command prepare_command() {
  return make_command<PrepareOptions>(
      "prepare", "write a dataset in scorch's HDF5 schema (/images or /points, /labels)",
      [](CLI::App& app, PrepareOptions& opt) {
        app.add_option("dataset", opt.dataset,
                       "fashion-mnist (IDX files -> <out>/fashion_mnist_{train,test}.h5) | cifar10 (binary batches -> "
                       "<out>/cifar10_{train,test}.h5, or X.h5 and X_test.h5 for --out X.h5) | images (a folder of "
                       "PNG/JPEG -> the file <out>, centre-cropped and resized; parallel over ranks) | mixture (exact "
                       "draws of the analytic_gmm in --config -> the file <out>)")
            ->required()
            ->check(CLI::IsMember({"fashion-mnist", "cifar10", "images", "mixture"}));
        app.add_option("--raw", opt.raw,
                       "fashion-mnist: folder of the IDX files (default /usr/share/datasets/fashion-mnist); cifar10: "
                       "folder of data_batch_*.bin/test_batch.bin, or cifar-10-binary.tar.gz");
        app.add_option("--dir", opt.dir, "images: folder of .png/.jpg/.jpeg files (searched recursively)");
        app.add_option("--resolution", opt.resolution, "images: output height = width (e.g. 256)");
        app.add_option("--out", opt.out, "output folder or file (see dataset)")->required();
        app.add_option("--config", opt.config, "mixture: job file with model.name = \"analytic_gmm\"");
        app.add_option("--count", opt.count, "mixture: number of points")->capture_default_str();
        app.footer("Every input is checked (record sizes, labels, image sizes) and files are written atomically: a "
                   "failure leaves no partial output.");
      },
      [](const PrepareOptions& opt, dist::Communicator& comm) { return prepare(opt, comm); });
}

}  // namespace scorch::cli
