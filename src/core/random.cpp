// Seed derivation and device generators (see core/random.h).
#include "scorch/core/random.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <cmath>

#include "scorch/core/error.h"

namespace scorch {

namespace {
uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t derive_seed(uint64_t seed, Stream stream, std::initializer_list<uint64_t> parts) {
  // The stream id is the first index of the chain (the layout of scorch's first release).
  uint64_t h = splitmix(seed);
  h = splitmix(h ^ splitmix(static_cast<uint64_t>(stream) + 0x632be59bd9b4e019ULL));
  for (auto p : parts) h = splitmix(h ^ splitmix(p + 0x632be59bd9b4e019ULL));
  return h;
}

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // key schedule (golden ratio, sqrt 3)
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kW0;
      k[1] += kW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c[0], p1 = static_cast<uint64_t>(kM1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
  }
  return c;
}

// Counter layout: {block, lane, row (low), row (high)}.
std::array<uint32_t, 4> CounterRng::block(uint32_t lane, uint64_t b) const {
  SCORCH_CHECK(b <= 0xffffffffull, "CounterRng: more than 2^34 values in one lane");
  return philox4x32_10({static_cast<uint32_t>(b), lane, static_cast<uint32_t>(row_), static_cast<uint32_t>(row_ >> 32)},
                       key_);
}

uint32_t CounterRng::bits(uint32_t lane, uint64_t index) const { return block(lane, index / 4)[index % 4]; }

void CounterRng::uniform(float* out, int64_t n, uint32_t lane) const {
  constexpr float kScale = 1.0f / 16777216.0f;  // 2^-24
  for (int64_t i = 0; i < n; i += 4) {
    const auto w = block(lane, static_cast<uint64_t>(i / 4));
    for (int64_t j = 0; j < 4 && i + j < n; ++j) out[i + j] = static_cast<float>(w[j] >> 8) * kScale;
  }
}

void CounterRng::normal(float* out, int64_t n, uint32_t lane) const {
  // Box-Muller in single precision: the uniforms have 24 bits (exact in float), and float
  // log/sqrt/sin/cos are about 3x cheaper than double, which decides how fast the
  // producer thread makes a 256x256 batch (~200k normals per image).
  constexpr float kScale = 1.0f / 16777216.0f, kTwoPi = 6.28318530717958648f;
  for (int64_t i = 0; i < n; i += 4) {
    const auto w = block(lane, static_cast<uint64_t>(i / 4));
    for (int pair = 0; pair < 2; ++pair) {
      const float u1 = (static_cast<float>(w[2 * pair] >> 8) + 1.0f) * kScale;  // (0, 1]
      const float u2 = static_cast<float>(w[2 * pair + 1] >> 8) * kScale;       // [0, 1)
      const float r = std::sqrt(-2.0f * std::log(u1));
      if (i + 2 * pair < n) out[i + 2 * pair] = r * std::cos(kTwoPi * u2);
      if (i + 2 * pair + 1 < n) out[i + 2 * pair + 1] = r * std::sin(kTwoPi * u2);
    }
  }
}

int64_t CounterRng::below(int64_t n, uint32_t lane, uint64_t index) const {
  SCORCH_CHECK(n > 0 && n <= 0xffffffffll, "CounterRng::below: n = {} out of range", n);
  return static_cast<int64_t>((static_cast<uint64_t>(bits(lane, index)) * static_cast<uint64_t>(n)) >> 32);
}

at::Generator make_generator(const torch::Device& device, uint64_t seed) {
  if (device.is_cpu()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  SCORCH_CHECK(device.is_cuda(), "no random generator for device {}", device.str());
  // A clone of the device's default generator, through ATen's device-generic context (so
  // CPU-only builds compile this file too; LibTorch 1.13 and 2.x both have it).
  const auto index = device.has_index() ? device.index() : c10::DeviceIndex{0};
  auto g = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, index)).clone();
  g.set_current_seed(seed);  // also resets the Philox offset to 0
  return g;
}

}  // namespace scorch
