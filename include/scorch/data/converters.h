// Converters from published dataset formats to scorch's HDF5 schema: CIFAR-10's binary
// batches (a folder or the cifar-10-binary.tar.gz itself) and folders of PNG/JPEG images
// (CelebA-HQ, FFHQ), centre-cropped and resized, decoded in parallel over the ranks.
#pragma once
#include <string>
#include <vector>

#include "scorch/dist/communicator.h"

namespace scorch::data {

// One CIFAR-10 batch: records of 3073 bytes (label 0-9, then 1024 R, 1024 G, 1024 B, row-major
// 32x32). Returns images uint8 [N,32,32,3] and labels int64 [N]; `name` is used in errors.
std::pair<torch::Tensor, torch::Tensor> decode_cifar10_batch(const std::string& bytes, const std::string& name);

// `raw`: a folder holding data_batch_{1..5}.bin and test_batch.bin (or cifar-10-batches-bin/
// inside it), or the .tar.gz / .tar. `out`: a folder (-> cifar10_train.h5, cifar10_test.h5)
// or a file X.h5 (-> X.h5 = train, X_test.h5 = test). Every input is read and checked before
// anything is written. Returns {train path, test path}.
std::vector<std::string> prepare_cifar10(const std::string& raw, const std::string& out);

// The image at `path` as uint8 [R,R,3]: decoded (PNG/JPEG/BMP/...), grey promoted to RGB,
// centre-cropped to a square and resized to R x R (stb_image_resize, Mitchell filter).
torch::Tensor load_image_square(const std::string& path, int64_t resolution);

// Every image file under `dir` (recursive, sorted by path) -> `out` (/images [N,R,R,3]).
// All must decode and share the size of the first; an unreadable or differently sized
// image is an error naming the file. Ranks decode interleaved shards; rank 0 writes.
int64_t prepare_image_folder(const std::string& dir, int64_t resolution, const std::string& out,
                             dist::Communicator& comm);

}  // namespace scorch::data
