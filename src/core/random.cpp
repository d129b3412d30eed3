// Seed derivation and device generators (see core/random.h).
#include "scorch/core/random.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

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
