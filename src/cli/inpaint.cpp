// `scorch inpaint`: fills the unknown part of every row of a data file by sampling under
// the replacement constraint (sampling/constraint.h): known pixels (or coordinates) are
// replaced by the forward-noised data after every step. Distributed and resumable through
// the farm (cli/controlled.cpp).
#include <CLI/CLI.hpp>

#include <stb/stb_image.h>

#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/io/hdf5.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

struct InpaintOptions {
  Common common;
  std::string data, mask, out;
  int64_t count = 0;
};

// An HDF5 /mask as float, every entry 0 (free) or 1 (known). A fractional mask would blend
// the known data with the sample, which score_sde's inpainter does not define, and a NaN
// would poison every row: both are refused, counted, with an example.
torch::Tensor binary_mask(const torch::Tensor& raw, const std::string& spec) {
  auto t = raw.to(torch::kFloat64);
  const auto nan = torch::isnan(t);
  const int64_t n_nan = nan.sum().item<int64_t>();
  SCORCH_CHECK(n_nan == 0, "{}: /mask holds NaN in {} of {} entries: a mask is 0 (free) or 1 (known)", spec, n_nan,
               t.numel());
  const auto other = (t != 0) & (t != 1);
  const int64_t n_other = other.sum().item<int64_t>();
  SCORCH_CHECK(n_other == 0, "{}: /mask holds {} of {} entries that are neither 0 nor 1 (e.g. {}): a mask is 0 (free) "
               "or 1 (known); round or threshold it first", spec, n_other, t.numel(),
               t.masked_select(other)[0].item<double>());
  return t.to(torch::kFloat32);
}

// The mask in the model's layout, [1,C,H,W] or [1,D] float (1 known, 0 free).
torch::Tensor load_mask(const std::string& spec, const Config& cfg) {
  const auto item = cfg.item_shape();
  if (cfg.is_image_data()) {
    const int64_t C = item[0], H = item[1], W = item[2];
    auto m = torch::ones({1, 1, H, W});
    if (spec == "right-half") {
      m.slice(3, W / 2, W).zero_();
    } else if (spec == "bottom-half") {
      m.slice(2, H / 2, H).zero_();
    } else if (spec == "center") {
      m.slice(2, H / 4, H - H / 4).slice(3, W / 4, W - W / 4).zero_();
    } else {
      SCORCH_CHECK(fs::exists(spec), "--mask {}: no such file (give a PNG, an HDF5 file with /mask, or one of "
                   "right-half, bottom-half, center)", spec);
      if (h5::is_hdf5(spec)) {
        auto f = h5::File::open_read(spec);
        SCORCH_CHECK(h5::exists(f.id(), "mask"), "{}: no /mask", spec);
        auto t = binary_mask(h5::read_tensor(f.id(), "mask", spec), spec);
        if (t.dim() == 2) t = t.unsqueeze(-1);
        SCORCH_CHECK(t.dim() == 3 && t.size(0) == H && t.size(1) == W && (t.size(2) == 1 || t.size(2) == C),
                     "{}: /mask must be [H,W] or [H,W,C] = [{},{},{}] (got [{}])", spec, H, W, C,
                     fmt::join(t.sizes(), ", "));
        return (t.permute({2, 0, 1}).unsqueeze(0) > 0).to(torch::kFloat32).expand({1, C, H, W}).contiguous();
      }
      int w = 0, h = 0, ch = 0;
      std::unique_ptr<unsigned char, void (*)(void*)> px(stbi_load(spec.c_str(), &w, &h, &ch, 1), stbi_image_free);
      SCORCH_CHECK(px != nullptr, "--mask {}: not a readable image ({})", spec, stbi_failure_reason());
      SCORCH_CHECK(h == H && w == W, "--mask {} is {}x{} but the model's images are {}x{}", spec, w, h, W, H);
      m = (torch::from_blob(px.get(), {1, 1, H, W}, torch::kUInt8) >= 128).to(torch::kFloat32);
    }
    return m.expand({1, C, H, W}).contiguous();
  }
  const int64_t D = item[0];
  SCORCH_CHECK(fs::exists(spec) && h5::is_hdf5(spec), "--mask {}: point data need an HDF5 file with /mask [{}]", spec, D);
  auto f = h5::File::open_read(spec);
  SCORCH_CHECK(h5::exists(f.id(), "mask"), "{}: no /mask", spec);
  auto t = binary_mask(h5::read_tensor(f.id(), "mask", spec), spec).flatten();
  SCORCH_CHECK(t.numel() == D, "{}: /mask has {} entries but the points have {} coordinates", spec, t.numel(), D);
  return (t > 0).to(torch::kFloat32).unsqueeze(0);
}

int inpaint(const InpaintOptions& opt, dist::Communicator& comm) {
  auto r = resolve(opt.common, /*need_ckpt=*/true);
  auto mask = load_mask(opt.mask, r.cfg);
  SCORCH_CHECK(mask.sum().item<double>() > 0 && (1 - mask).sum().item<double>() > 0,
               "--mask {}: the mask must keep some values and leave some free", opt.mask);
  Controlled c;
  c.kind = "inpaint";
  c.data = opt.data;
  c.out = opt.out;
  c.count = opt.count;
  c.mask_id = fs::exists(opt.mask) ? fs::absolute(opt.mask).string() + " " + file_fnv1a64_hex(opt.mask) : opt.mask;
  {  // the default output is named after the mask's content: runs with other masks keep theirs
    auto bytes = (mask > 0.5).to(torch::kUInt8).contiguous();
    c.tag = "mask" + fnv1a64_hex(std::string(reinterpret_cast<const char*>(bytes.data_ptr()),
                                             static_cast<size_t>(bytes.numel())))
                         .substr(0, 8);
  }
  c.make = [mask](const torch::Tensor& x0) {
    return sampling::Constraint::inpainting(x0, mask.to(x0.device()).expand_as(x0));
  };
  c.show_input = [mask](const torch::Tensor& x01) { return x01 * mask + 0.5 * (1 - mask); };
  return run_controlled(opt.common, comm, c);
}

}  // namespace

Command inpaint_command() {
  return make_command<InpaintOptions>(
      "inpaint", "complete the masked part of every row of a data file (controllable generation)",
      [](CLI::App& app, InpaintOptions& opt) {
        add_common(app, opt.common, true);
        app.add_option("--data", opt.data, "data file in scorch's schema (/images or /points)")
            ->required()
            ->check(CLI::ExistingFile);
        app.add_option("--mask", opt.mask,
                       "what is known: a PNG of the image size (white = known), an HDF5 file with /mask ([H,W], "
                       "[H,W,C] or [D], every entry 0 or 1; 1 = known), or right-half | bottom-half | center (that part unknown)")
            ->required();
        app.add_option("--count", opt.count, "rows to complete (default: all)");
        app.add_option("--out", opt.out,
                       "output (default <workdir>/samples/inpaint_<step>-<sampler>-mask<hash of the mask>-<hash of every input>.h5): /samples, /index, and for "
                       "images /images uint8 and a PNG grid masked input | result | original");
        app.footer("Known values are replaced by the data forward-noised to the current time after every sampler "
                   "update (score_sde's get_pc_inpainter; PC, ode and the fast methods alike) and set exactly at the "
                   "end. Row i draws its noise from stream (eval.seed, i); batches of eval.batch_size rows are dealt "
                   "over ranks and kept in <out>.parts/ until --out is written: a rerun resumes. Class guidance "
                   "(sampling.class_label) applies too.");
      },
      [](const InpaintOptions& opt, dist::Communicator& comm) { return inpaint(opt, comm); });
}

}  // namespace scorch::cli
