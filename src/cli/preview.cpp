// `scorch preview FILE`: the first images of a samples or dataset file as text, for a look
// without leaving the terminal (the PNG grids are beside the sample files).
#include <CLI/CLI.hpp>

#include "scorch/cli/commands.h"
#include "scorch/core/error.h"
#include "scorch/data/image_grid.h"
#include "scorch/io/hdf5.h"

namespace scorch::cli {

namespace {

struct PreviewOptions {
  std::string file;
  int64_t count = 4;
};

int preview(const PreviewOptions& opt) {
  auto f = h5::File::open_read(opt.file);
  SCORCH_CHECK(h5::exists(f.id(), "images"), "{}: no /images to preview (point data has /samples or /points)", opt.file);
  auto shape = h5::shape(f.id(), "images");
  SCORCH_CHECK(shape.size() == 4 && shape[0] > 0, "{}: /images must be a non-empty [N,H,W,C]", opt.file);
  auto imgs = h5::read_rows(f.id(), "images", 0, std::min<int64_t>(opt.count, shape[0]), opt.file);
  fmt::print("{} ({} of {} images, {}x{}):\n{}", opt.file, imgs.size(0), shape[0], shape[1], shape[2],
             data::ascii_preview(imgs, opt.count));
  return 0;
}

}  // namespace

Command preview_command() {
  return make_command<PreviewOptions>(
      "preview", "print images of a samples or dataset HDF5 file as text",
      [](CLI::App& app, PreviewOptions& opt) {
        app.add_option("file", opt.file, "HDF5 file with /images (e.g. <workdir>/samples/samples_*.h5)")->required();
        app.add_option("--count", opt.count, "how many images, side by side")->capture_default_str();
      },
      [](const PreviewOptions& opt, dist::Communicator& comm) { return comm.rank() == 0 ? preview(opt) : 0; });
}

}  // namespace scorch::cli
