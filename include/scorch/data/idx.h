// Reader for the IDX format of MNIST / Fashion-MNIST (optionally gzip'd): a big-endian
// header (magic 0x0803 images or 0x0801 labels, then the dimensions) followed by uint8 data.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace scorch::data {

struct IdxArray {
  std::vector<int64_t> dims;   // images: {N, 28, 28}; labels: {N}
  std::vector<uint8_t> bytes;  // row-major, prod(dims) values
};

// Reads an IDX file (plain or .gz). `expected_magic` is 0x803 (images) or 0x801 (labels).
// Throws naming the file for a wrong magic number, a truncated file or a gzip error.
IdxArray read_idx(const std::string& path, uint32_t expected_magic);

}  // namespace scorch::data
