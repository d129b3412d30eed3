// Named random streams. Every random number scorch draws comes from a generator seeded by
// derive_seed(config seed, stream, indices...), so that what a piece of work draws depends
// only on its global indices (step, data row, sample chunk), never on the world size, the
// rank or how often a job was restarted. The stream ids are part of the checkpoint and
// sample formats: never renumber them.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <initializer_list>

namespace scorch {

enum class Stream : uint64_t {
  kDropout = 1,        // (rank): each rank's default generator, used by dropout
  kEpochOrder = 2,     // (epoch): the permutation of the training set in that epoch
  kTrainRow = 3,       // (step, global row): time, noise, flip and dequantisation of one row
  kDropoutReseed = 4,  // (step, rank): dropout after resuming on another world size
  kSampleChunk = 5,    // (chunk): prior draw and sampler noise of one chunk of samples
  kLikelihood = 6,     // (repeat, chunk): dequantisation and Hutchinson noise of bits/dim
};

// A 64-bit seed from the job seed, a stream and indices (a splitmix64 chain).
uint64_t derive_seed(uint64_t seed, Stream stream, std::initializer_list<uint64_t> parts = {});

// A fresh generator of `device`'s type seeded with `seed` (CPU: mt19937; CUDA: Philox with
// offset 0). Tensors drawn from it live on `device`.
at::Generator make_generator(const torch::Device& device, uint64_t seed);
inline at::Generator make_generator(uint64_t seed) { return make_generator(torch::kCPU, seed); }

}  // namespace scorch
