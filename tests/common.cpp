// Shared test helpers (see common.h).
#include "common.h"

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>
#include <random>
#include <sstream>

#include "scorch/data/dataset.h"

namespace scorch::test {

TempDir::TempDir(const std::string& tag) {
  static std::random_device rd;
  path_ = (std::filesystem::temp_directory_path() / ("scorch_" + tag + "_" + std::to_string(rd()))).string();
  std::filesystem::create_directories(path_);
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Config tiny_image_config(const std::string& data_path, int64_t n, uint64_t seed) {
  Config c;
  c.model.name = "unet";
  c.model.nf = 8;
  c.model.ch_mult = {1, 2};
  c.model.num_res_blocks = 1;
  c.model.attn_resolutions = {4};
  c.model.dropout = 0.1;
  c.model.num_scales = 20;
  c.data.image_size = 8;
  c.data.num_channels = 1;
  c.data.path = data_path;
  c.data.centered = true;
  c.data.random_flip = true;
  c.data.uniform_dequantization = true;
  c.training.batch_size = 8;
  c.training.snapshot_freq = 1000;
  c.training.log_freq = 1000;
  c.optim.warmup = 2;
  c.optim.lr = 1e-3;
  c.eval.batch_size = 8;
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto imgs = torch::randint(0, 256, {n, 8, 8, 1}, g, torch::kInt64).to(torch::kUInt8);
  data::write_images(data_path, imgs, torch::arange(n) % 10);
  return c;
}

Config tiny_point_config(const std::string& data_path, int64_t n, uint64_t seed) {
  Config c;
  c.model.name = "mlp";
  c.model.nf = 32;
  c.model.num_res_blocks = 2;
  c.model.dropout = 0.0;
  c.model.num_scales = 50;
  c.model.ema_rate = 0.99;
  c.data.dim = 2;
  c.data.path = data_path;
  c.training.batch_size = 16;
  c.training.snapshot_freq = 1000;
  c.training.log_freq = 1000;
  c.optim.warmup = 0;
  c.optim.lr = 2e-3;
  c.eval.batch_size = 32;
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto which = torch::randint(0, 2, {n, 1}, g, torch::kInt64).to(torch::kFloat32);
  auto pts = torch::randn({n, 2}, g, torch::kFloat32) * 0.1 + (which * 2.0 - 1.0);
  data::write_points(data_path, pts, which.squeeze(1).to(torch::kInt64));
  return c;
}

bool maps_equal(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || !torch::equal(v, it->second)) return false;
  }
  return true;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace scorch::test
