// Named random streams. Every random number scorch draws comes from a generator seeded by
// derive_seed(config seed, stream, indices...), so that what a piece of work draws depends
// only on its global indices (step, data row, sample chunk), never on the world size, the
// rank or how often a job was restarted. The stream ids are part of the checkpoint and
// sample formats: never renumber them.
#pragma once
#include <torch/torch.h>

#include <array>
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
  kSampleItem = 7,     // (sample index) under eval.seed: every draw of one sample (sampling/noise.h)
  kKid = 8,            // (): the random subsets of the Kernel Inception Distance
  kClassifier = 9,     // (0): initial weights; (epoch + 1): order of the classifier's training set
  kSnapshotSamples = 10,  // (): the per-sample noise of training.snapshot_sampling (the same every snapshot)
};

// A 64-bit seed from the job seed, a stream and indices (a splitmix64 chain).
uint64_t derive_seed(uint64_t seed, Stream stream, std::initializer_list<uint64_t> parts = {});

// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011): the 128-bit block `counter` encrypted under the 64-bit `key`.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// A counter-based random stream: every value is a pure function of (key, row, lane, index),
// so any row can be drawn alone, in any order, on any rank, with no generator state and no
// 32-bit seed truncation (torch's CPU generator keeps only 32 bits of its seed). Lanes keep
// different quantities of one row independent of each other's lengths.
class CounterRng {
 public:
  CounterRng(uint64_t key, uint64_t row) : key_{static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)}, row_(row) {}
  // 32 random bits: word `index` of `lane`.
  uint32_t bits(uint32_t lane, uint64_t index) const;
  // n floats uniform in [0, 1) (24-bit resolution) from lane `lane`.
  void uniform(float* out, int64_t n, uint32_t lane) const;
  // n standard normal floats from lane `lane` (Box-Muller on pairs of uniforms, in float).
  void normal(float* out, int64_t n, uint32_t lane) const;
  // An integer uniform in [0, n) from word `index` of `lane` (multiply-shift).
  int64_t below(int64_t n, uint32_t lane, uint64_t index) const;

 private:
  std::array<uint32_t, 4> block(uint32_t lane, uint64_t b) const;
  std::array<uint32_t, 2> key_;
  uint64_t row_;
};

// A fresh generator of `device`'s type seeded with `seed` (CPU: mt19937; CUDA: Philox with
// offset 0). Tensors drawn from it live on `device`.
at::Generator make_generator(const torch::Device& device, uint64_t seed);
inline at::Generator make_generator(uint64_t seed) { return make_generator(torch::kCPU, seed); }

}  // namespace scorch
