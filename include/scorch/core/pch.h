// Precompiled header for scorch's translation units: LibTorch dominates compile time,
// so it is parsed once per target instead of once per file.
#pragma once
#include <torch/torch.h>
#include <fmt/format.h>
#include <string>
#include <vector>
