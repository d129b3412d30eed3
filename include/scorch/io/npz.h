// NumPy .npy / .npz files, as pytorch-fid reads and writes its statistics (`mu`, `sigma`):
// an .npz is a ZIP archive of "<key>.npy" members (NEP 1 format 1.0/2.0 headers). Written
// uncompressed (ZIP method 0, CRC-32 per member) and atomically; read back stored or
// deflated members (np.savez_compressed, which pytorch-fid uses) through zlib. Arrays are
// little-endian float64, float32, int64 or int32, C or Fortran order.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace scorch::io {

// Writes `arrays` (CPU tensors; float64/float32/int64/int32) as `path`, atomically.
void write_npz(const std::string& path, const std::map<std::string, torch::Tensor>& arrays);
// Every array of `path` by key (without ".npy"); throws naming the file and member on
// anything it cannot read: a negative or overflowing shape, a payload other than its header
// claims, and (before inflating) a deflated member whose claimed size differs from its
// header's or exceeds the memory available.
std::map<std::string, torch::Tensor> read_npz(const std::string& path);

// One .npy payload <-> tensor (exposed for tests).
std::string npy_bytes(const torch::Tensor& t);
torch::Tensor parse_npy(const std::string& bytes, const std::string& what);
// The size (header and data) that the .npy header at the start of `head` claims.
size_t npy_payload_size(const std::string& head, const std::string& what);

}  // namespace scorch::io
