// Shared test helpers: Boost.Test set-up, temporary folders, tiny configs and datasets.
#pragma once
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "scorch/core/config.h"

namespace scorch::test {

// A fresh empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs `f` and returns the message of the exception it throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A tiny U-Net config on 8x8x1 images at `data_path` (random uint8, `n` items, written).
Config tiny_image_config(const std::string& data_path, int64_t n = 64, uint64_t seed = 7);
// A small MLP config on 2-D points drawn from a two-mode mixture, written to `data_path`.
Config tiny_point_config(const std::string& data_path, int64_t n = 256, uint64_t seed = 7);

// Everything a checkpoint holds must be equal (bitwise).
bool maps_equal(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b);

void write_file(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);

}  // namespace scorch::test
