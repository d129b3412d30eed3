// `scorch colorize`: colour images from their grey levels by sampling under the paper's
// colourisation constraint (sampling/constraint.h): in the orthogonal basis grey / chroma
// the grey channel (R+G+B)/sqrt(3) is known, the two chroma channels are sampled.
// Distributed and resumable through the farm (cli/controlled.cpp).
#include <CLI/CLI.hpp>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"

namespace scorch::cli {

namespace {

struct ColorizeOptions {
  Common common;
  std::string data, out;
  int64_t count = 0;
};

int colorize(const ColorizeOptions& opt, dist::Communicator& comm) {
  auto r = resolve(opt.common, /*need_ckpt=*/true);
  SCORCH_CHECK(r.cfg.is_image_data() && r.cfg.data.num_channels == 3,
               "colorize needs a model of RGB images (data.num_channels = 3; got {} channel(s){})",
               r.cfg.data.num_channels, r.cfg.is_image_data() ? "" : ", point data");
  Controlled c;
  c.kind = "colorize";
  c.data = opt.data;
  c.out = opt.out;
  c.count = opt.count;
  c.mask_id = "grey";
  c.make = [](const torch::Tensor& x0) { return sampling::Constraint::colorization(x0); };
  c.show_input = [](const torch::Tensor& x01) { return x01.mean(1, true).expand_as(x01); };
  return run_controlled(opt.common, comm, c);
}

}  // namespace

Command colorize_command() {
  return make_command<ColorizeOptions>(
      "colorize", "colour the grey levels of every image of a data file (controllable generation)",
      [](CLI::App& app, ColorizeOptions& opt) {
        add_common(app, opt.common, true);
        app.add_option("--data", opt.data,
                       "image file in scorch's schema; its colour images are turned grey ((R+G+B)/3) and coloured "
                       "again")
            ->required()
            ->check(CLI::ExistingFile);
        app.add_option("--count", opt.count, "images to colour (default: all)");
        app.add_option("--out", opt.out,
                       "output (default <workdir>/samples/colorize_<step>-<sampler>-<hash of every input>.h5): /samples, /images uint8, "
                       "/index and a PNG grid grey input | result | original");
        app.footer("score_sde's get_pc_colorizer: the grey channel of the orthogonal colour basis is replaced by the "
                   "forward-noised grey image after every sampler update, and set exactly at the end. Batches of "
                   "eval.batch_size images are dealt over ranks and kept in <out>.parts/: a rerun resumes.");
      },
      [](const ColorizeOptions& opt, dist::Communicator& comm) { return colorize(opt, comm); });
}

}  // namespace scorch::cli
