// Sample grids through stb_image_write (Debian's libstb).
#include "scorch/data/image_grid.h"

#include <cmath>

#include "scorch/core/error.h"
#include "scorch/io/files.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

namespace scorch::data {

void write_png(const std::string& path, int w, int h, int channels, const unsigned char* px) {
  io::write_file_atomically(path, [&](const std::string& tmp) {
    SCORCH_CHECK(stbi_write_png(tmp.c_str(), w, h, channels, px, w * channels) != 0, "{}: cannot write the PNG", tmp);
  });
}

void write_png_grid(const std::string& path, const torch::Tensor& images, int zoom, int64_t columns) {
  SCORCH_CHECK(images.dim() == 4 && images.scalar_type() == torch::kUInt8, "write_png_grid: need uint8 [N,H,W,C]");
  auto img = images.contiguous();
  int64_t n = img.size(0), h = img.size(1) * zoom, w = img.size(2) * zoom, c = img.size(3);
  SCORCH_CHECK(n > 0 && (c == 1 || c == 3), "write_png_grid: need N > 0 and 1 or 3 channels");
  int64_t cols = columns > 0 ? std::min(columns, n) : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  int64_t rows = (n + cols - 1) / cols;
  const int64_t pad = 2;
  int64_t W = cols * (w + pad) + pad, H = rows * (h + pad) + pad;
  auto canvas = torch::full({H, W, c}, 255, torch::kUInt8);
  auto big = zoom > 1 ? img.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2) : img;
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = i / cols, q = i % cols;
    canvas.slice(0, pad + r * (h + pad), pad + r * (h + pad) + h)
        .slice(1, pad + q * (w + pad), pad + q * (w + pad) + w)
        .copy_(big[i]);
  }
  int ok = stbi_write_png(path.c_str(), static_cast<int>(W), static_cast<int>(H), static_cast<int>(c),
                          canvas.data_ptr<uint8_t>(), static_cast<int>(W * c));
  SCORCH_CHECK(ok, "cannot write PNG '{}'", path);
}

std::string ascii_preview(const torch::Tensor& images, int64_t count) {
  SCORCH_CHECK(images.dim() == 4 && images.scalar_type() == torch::kUInt8, "ascii_preview: need uint8 [N,H,W,C]");
  static const char kRamp[] = " .:-=+*#%@";
  int64_t n = std::min(count, images.size(0)), H = images.size(1), W = images.size(2);
  auto grey = images.slice(0, 0, n).to(torch::kFloat32).mean(3).contiguous();  // [n,H,W]
  auto acc = grey.accessor<float, 3>();
  std::string out;
  for (int64_t y = 0; y + 1 < H + 1; y += 2) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t x = 0; x < W; ++x) {
        float v = acc[i][y][x];
        if (y + 1 < H) v = 0.5f * (v + acc[i][y + 1][x]);
        out += kRamp[std::min<int>(9, static_cast<int>(v / 25.6f))];
      }
      out += i + 1 < n ? "  " : "\n";
    }
  }
  return out;
}

}  // namespace scorch::data
