// PNG grids of samples: people would rather look than read numbers.
#pragma once
#include <torch/torch.h>

#include <string>

namespace scorch::data {

// Writes uint8 [N,H,W,C] (C = 1 or 3) as a near-square grid PNG with a 2-pixel border,
// each image magnified `zoom` times (nearest neighbour); `columns` > 0 fixes the number of
// images per row (3 for "input | result | original" rows).
void write_png_grid(const std::string& path, const torch::Tensor& images_nhwc_u8, int zoom = 1, int64_t columns = 0);

// Writes w x h pixels of `channels` interleaved uint8 values as the PNG `path` (atomically).
void write_png(const std::string& path, int w, int h, int channels, const unsigned char* pixels);

// Renders up to `count` images of uint8 [N,H,W,C] side by side as text (10 grey levels,
// two image rows per text line), for a look from a terminal or a Slurm log.
std::string ascii_preview(const torch::Tensor& images_nhwc_u8, int64_t count);

}  // namespace scorch::data
